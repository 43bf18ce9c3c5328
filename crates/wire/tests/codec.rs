//! The codec byte for byte, round trips, and arbitrary input that must never panic.

use bulkhead_wire::{
    to_client, to_server, BackendMessage, Frame, FrontendMessage, SqlState, Startup,
    TransactionStatus,
};
use bytes::BytesMut;
use proptest::prelude::*;

fn one(buf: &mut BytesMut) -> Frame {
    Frame::parse(buf, 1 << 20)
        .expect("valid")
        .expect("complete")
}

#[test]
fn query_is_encoded_byte_for_byte() {
    let mut buf = BytesMut::new();
    to_server::query(&mut buf, "SELECT 1");
    assert_eq!(&buf[..], b"Q\0\0\0\x0dSELECT 1\0");
}

#[test]
fn error_response_carries_severity_code_message_and_hint() {
    let mut buf = BytesMut::new();
    to_client::error_response(
        &mut buf,
        "ERROR",
        SqlState::InsufficientPrivilege,
        "no",
        Some("do this"),
    );
    let f = one(&mut buf);
    let BackendMessage::Error(fields) = BackendMessage::decode(&f).expect("decode") else {
        panic!("not an error")
    };
    assert_eq!(fields.code(), Some("42501"));
    assert_eq!(fields.message(), Some("no"));
    assert_eq!(fields.severity(), Some("ERROR"));
}

#[test]
fn ready_for_query_round_trips() {
    for s in [
        TransactionStatus::Idle,
        TransactionStatus::InTransaction,
        TransactionStatus::Failed,
    ] {
        let mut buf = BytesMut::new();
        to_client::ready_for_query(&mut buf, s);
        assert_eq!(
            BackendMessage::decode(&one(&mut buf)),
            Ok(BackendMessage::ReadyForQuery(s))
        );
    }
}

#[test]
fn extended_protocol_messages_round_trip() {
    let mut buf = BytesMut::new();
    to_server::parse(&mut buf, "s1", "SELECT $1::int", &[23]);
    to_server::bind(&mut buf, "", "s1", &[0], &[Some(b"7"), None], &[1]);
    to_server::describe(&mut buf, b'P', "");
    to_server::execute(&mut buf, "", 0);
    to_server::close(&mut buf, b'S', "s1");
    to_server::sync(&mut buf);
    let decoded: Vec<FrontendMessage> = (0..6)
        .map(|_| FrontendMessage::decode(&one(&mut buf)).expect("decode"))
        .collect();
    assert_eq!(
        decoded[0],
        FrontendMessage::Parse {
            name: "s1".into(),
            query: "SELECT $1::int".into(),
            param_types: vec![23]
        }
    );
    assert_eq!(
        decoded[1],
        FrontendMessage::Bind {
            portal: String::new(),
            statement: "s1".into(),
            param_formats: vec![0],
            params: vec![Some(bytes::Bytes::from_static(b"7")), None],
            result_formats: vec![1],
        }
    );
    assert_eq!(decoded[5], FrontendMessage::Sync);
    assert!(buf.is_empty());
}

#[test]
fn a_bind_claiming_more_parameters_than_it_holds_is_refused() {
    let mut body = BytesMut::new();
    body.extend_from_slice(b"\0\0");
    body.extend_from_slice(&0i16.to_be_bytes());
    body.extend_from_slice(&i16::MAX.to_be_bytes());
    let frame = Frame {
        tag: b'B',
        body: body.freeze(),
    };
    assert!(FrontendMessage::decode(&frame).is_err());
}

proptest! {
    #[test]
    fn arbitrary_bytes_never_panic(data in proptest::collection::vec(any::<u8>(), 0..512)) {
        let mut buf = BytesMut::from(&data[..]);
        let _ = Startup::parse(&mut buf);
        let mut buf = BytesMut::from(&data[..]);
        while let Ok(Some(frame)) = Frame::parse(&mut buf, 1 << 16) {
            let _ = FrontendMessage::decode(&frame);
            let _ = BackendMessage::decode(&frame);
        }
        if let Some((&tag, body)) = data.split_first() {
            let frame = Frame { tag, body: bytes::Bytes::copy_from_slice(body) };
            let _ = FrontendMessage::decode(&frame);
            let _ = BackendMessage::decode(&frame);
        }
    }

    #[test]
    fn queries_round_trip(sql in "[^\u{0}]{0,200}") {
        let mut buf = BytesMut::new();
        to_server::query(&mut buf, &sql);
        prop_assert_eq!(FrontendMessage::decode(&one(&mut buf)).expect("decode"), FrontendMessage::Query(sql));
    }

    #[test]
    fn startup_parameters_round_trip(params in proptest::collection::vec(("[a-z_]{1,20}", "[^\u{0}]{0,40}"), 0..8)) {
        let mut buf = BytesMut::new();
        let refs: Vec<(&str, &str)> = params.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect();
        to_server::startup(&mut buf, &refs);
        prop_assume!(buf.len() <= bulkhead_wire::MAX_STARTUP_LEN);
        let got = Startup::parse(&mut buf).expect("valid").expect("complete");
        prop_assert_eq!(got, Startup::Startup { minor: 0, params });
    }

    #[test]
    fn frames_split_anywhere_reassemble(sql in "[a-z ]{1,100}", cut in 0usize..120) {
        let mut whole = BytesMut::new();
        to_server::query(&mut whole, &sql);
        let cut = cut.min(whole.len());
        let mut buf = BytesMut::from(&whole[..cut]);
        let first = Frame::parse(&mut buf, 1 << 16).expect("valid");
        if cut < whole.len() {
            prop_assert!(first.is_none());
            buf.extend_from_slice(&whole[cut..]);
            let f = Frame::parse(&mut buf, 1 << 16).expect("valid").expect("complete");
            prop_assert_eq!(f.to_bytes(), whole.freeze());
        } else {
            prop_assert_eq!(first.expect("complete").to_bytes(), whole.freeze());
        }
    }
}
