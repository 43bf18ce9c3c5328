//! Point-in-time recovery of one tenant, in any mode.
//!
//! Each cluster archives its WAL continuously with pgBackRest ([`archiving`]: base backups,
//! archive, a posix repository by default); [`window`] says what can be recovered; a
//! [`rewind`] restores a side instance of the cluster to the instant ([`side`]), extracts
//! the tenant there with the backup code and restores it into the tenant's place now,
//! wherever it lives today ([`history`] says where it lived then). Scheduled logical backups
//! per tier live in [`schedule`].

pub mod archiving;
mod error;
pub mod history;
pub mod repo;
pub mod rewind;
pub mod schedule;
pub mod side;
pub mod window;

pub use archiving::{enable, Layout};
pub use error::PitrError;
pub use rewind::{parse_instant, rewind, Phase, Progress, RewindRequest, Rewound, TableAt};
pub use window::{status, status_all, PitrStatus};
