//! What the client is owed, in order. Every message the gateway sends to the backend on a
//! client's behalf, every message it injects (a Parse of a statement that backend has not
//! seen) and every reply it answers itself (ParseComplete for a statement the backend
//! already has, CloseComplete) is queued here, so replies reach the client in exactly the
//! order its messages were sent.
//!
//! Invariant: after an ErrorResponse the server ignores everything up to Sync, so the queue
//! drops everything up to the Sync too; synthetic replies among them are not sent either.

use std::collections::VecDeque;

/// The shape of the replies to one message: which tag ends them.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Shape {
    /// Parse → ParseComplete (`1`).
    Parse,
    /// Bind → BindComplete (`2`).
    Bind,
    /// Close → CloseComplete (`3`).
    Close,
    /// Describe statement → ParameterDescription (`t`) then RowDescription (`T`) or NoData (`n`).
    DescribeStatement,
    /// Describe portal → RowDescription (`T`) or NoData (`n`).
    DescribePortal,
    /// Execute → rows, then CommandComplete (`C`), EmptyQueryResponse (`I`) or PortalSuspended (`s`).
    Execute,
    /// Sync or simple Query → ReadyForQuery (`Z`).
    Ready,
}

impl Shape {
    fn ends_with(&self, tag: u8) -> bool {
        match self {
            Shape::Parse => tag == b'1',
            Shape::Bind => tag == b'2',
            Shape::Close => tag == b'3',
            Shape::DescribeStatement | Shape::DescribePortal => tag == b'T' || tag == b'n',
            Shape::Execute => matches!(tag, b'C' | b'I' | b's'),
            Shape::Ready => tag == b'Z',
        }
    }
}

/// One expected reply.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Expect {
    /// Replies to a client's message: relayed.
    Relay(Shape),
    /// Replies to a message the gateway injected: swallowed.
    Swallow(Shape),
    /// A reply the gateway sends itself.
    Synthetic(Synth),
}

/// A reply the gateway writes itself, for a message it answered without the backend.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Synth {
    /// ParseComplete.
    ParseComplete,
    /// BindComplete.
    BindComplete,
    /// CloseComplete.
    CloseComplete,
    /// ParameterDescription with no parameters.
    NoParameters,
    /// NoData.
    NoData,
    /// CommandComplete with this tag.
    Complete(&'static str),
    /// The RowDescription of `SHOW application_name`.
    AppNameColumn,
    /// The DataRow of `SHOW application_name`: the client's own name.
    AppNameRow,
}

impl Synth {
    /// Writes the message; `app_name` is the client's own `application_name`.
    pub fn write(self, buf: &mut bytes::BytesMut, app_name: &str) {
        use bulkhead_wire::to_client;
        let empty = |buf: &mut bytes::BytesMut, tag: u8| buf.extend_from_slice(&[tag, 0, 0, 0, 4]);
        match self {
            Synth::ParseComplete => empty(buf, b'1'),
            Synth::BindComplete => empty(buf, b'2'),
            Synth::CloseComplete => empty(buf, b'3'),
            Synth::NoParameters => buf.extend_from_slice(&[b't', 0, 0, 0, 6, 0, 0]),
            Synth::NoData => empty(buf, b'n'),
            Synth::Complete(tag) => to_client::command_complete(buf, tag),
            Synth::AppNameColumn => to_client::row_description(buf, &[("application_name", 25)]),
            Synth::AppNameRow => to_client::data_row(buf, &[Some(app_name)]),
        }
    }
}

/// What to do with one backend frame.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct Decision {
    /// Synthetic replies to send before the frame.
    pub before: Vec<Synth>,
    /// Whether to relay the frame.
    pub relay: bool,
    /// Synthetic replies to send after the frame.
    pub after: Vec<Synth>,
}

/// The queue.
#[derive(Debug, Default)]
pub struct Expectations {
    queue: VecDeque<Expect>,
    /// After an error, the server skips every message up to Sync; expectations for messages
    /// sent in that state (after a Flush) are dropped until the Sync's.
    skipping: bool,
    /// Replies to injected statements that completed (their CommandComplete swallowed).
    pub swallowed: usize,
}

impl Expectations {
    /// Queues an expectation.
    pub fn push(&mut self, e: Expect) {
        if self.skipping {
            if matches!(
                e,
                Expect::Relay(Shape::Ready) | Expect::Swallow(Shape::Ready)
            ) {
                self.skipping = false;
            } else {
                return;
            }
        }
        self.queue.push_back(e);
    }

    /// True when every reply owed before the next Sync has arrived (after a Flush).
    pub fn drained(&self) -> bool {
        self.queue.is_empty()
    }

    /// True when a Sync's ReadyForQuery is still owed behind other replies (an
    /// extended-protocol unit), as opposed to a simple Query's.
    pub fn waits_for_sync(&self) -> bool {
        self.queue
            .iter()
            .any(|e| matches!(e, Expect::Relay(Shape::Execute)))
    }

    /// True when nothing is owed.
    #[cfg(test)]
    pub fn is_empty(&self) -> bool {
        self.queue.is_empty()
    }

    fn drain_synthetic(&mut self) -> Vec<Synth> {
        let mut out = Vec::new();
        while let Some(Expect::Synthetic(tag)) = self.queue.front() {
            out.push(*tag);
            self.queue.pop_front();
        }
        out
    }

    /// Decides about one frame from the backend.
    pub fn on_backend(&mut self, tag: u8) -> Decision {
        let mut d = Decision {
            before: self.drain_synthetic(),
            relay: true,
            after: Vec::new(),
        };
        match tag {
            // Asynchronous messages belong to no request.
            b'N' | b'S' | b'A' => return d,
            b'E' => {
                // The server skips to the next Sync: so do we. The error itself is relayed,
                // also when it answers an injected Parse: the client's statement cannot run.
                let mut reached_sync = false;
                while let Some(front) = self.queue.front() {
                    if matches!(
                        front,
                        Expect::Relay(Shape::Ready) | Expect::Swallow(Shape::Ready)
                    ) {
                        reached_sync = true;
                        break;
                    }
                    self.queue.pop_front();
                }
                if !reached_sync {
                    // The Sync is not sent yet (a Flush came first): what is sent until then
                    // is skipped by the server and owes nothing.
                    self.skipping = true;
                }
                return d;
            }
            _ => {}
        }
        if let Some(front) = self.queue.front().copied() {
            let (shape, relay) = match front {
                Expect::Relay(s) => (s, true),
                Expect::Swallow(s) => (s, false),
                Expect::Synthetic(_) => return d,
            };
            d.relay = relay;
            if shape.ends_with(tag) {
                self.queue.pop_front();
                if !relay && tag == b'C' {
                    self.swallowed += 1;
                }
                if tag != b'Z' {
                    d.after = self.drain_synthetic();
                }
            }
        }
        d
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn injected_parse_is_swallowed_and_synthetic_replies_keep_their_place() {
        let mut e = Expectations::default();
        // Client: Parse(s1, known) Bind(s1) Execute Close(s1) Sync.
        e.push(Expect::Synthetic(Synth::ParseComplete));
        e.push(Expect::Relay(Shape::Bind));
        e.push(Expect::Relay(Shape::Execute));
        e.push(Expect::Synthetic(Synth::CloseComplete));
        e.push(Expect::Relay(Shape::Ready));
        assert_eq!(
            e.on_backend(b'2'),
            Decision {
                before: vec![Synth::ParseComplete],
                relay: true,
                after: vec![]
            }
        );
        assert_eq!(
            e.on_backend(b'D'),
            Decision {
                before: vec![],
                relay: true,
                after: vec![]
            }
        );
        assert_eq!(
            e.on_backend(b'C'),
            Decision {
                before: vec![],
                relay: true,
                after: vec![Synth::CloseComplete]
            }
        );
        assert_eq!(
            e.on_backend(b'Z'),
            Decision {
                before: vec![],
                relay: true,
                after: vec![]
            }
        );
        assert!(e.is_empty());
    }

    #[test]
    fn an_error_skips_to_sync() {
        let mut e = Expectations::default();
        e.push(Expect::Swallow(Shape::Parse));
        e.push(Expect::Relay(Shape::Bind));
        e.push(Expect::Synthetic(Synth::CloseComplete));
        e.push(Expect::Relay(Shape::Ready));
        assert!(e.on_backend(b'E').relay);
        assert_eq!(
            e.on_backend(b'Z'),
            Decision {
                before: vec![],
                relay: true,
                after: vec![]
            }
        );
        assert!(e.is_empty());
    }

    #[test]
    fn after_an_error_before_sync_later_messages_owe_nothing() {
        let mut e = Expectations::default();
        e.push(Expect::Relay(Shape::Bind));
        assert!(e.on_backend(b'E').relay);
        assert!(e.drained());
        // Sent after a Flush, skipped by the server.
        e.push(Expect::Relay(Shape::Execute));
        e.push(Expect::Synthetic(Synth::CloseComplete));
        e.push(Expect::Relay(Shape::Ready));
        assert_eq!(
            e.on_backend(b'Z'),
            Decision {
                before: vec![],
                relay: true,
                after: vec![]
            }
        );
        assert!(e.is_empty());
    }

    #[test]
    fn swallowed_replies_are_not_relayed() {
        let mut e = Expectations::default();
        e.push(Expect::Swallow(Shape::Parse));
        e.push(Expect::Relay(Shape::Bind));
        e.push(Expect::Relay(Shape::Ready));
        assert!(!e.on_backend(b'1').relay);
        assert!(e.on_backend(b'2').relay);
    }
}
