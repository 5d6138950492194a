//! The job's states and the moves between them, as one table. Every write that changes a
//! job's status hands storage the move's allowed "from" statuses, and storage applies it as a
//! compare-and-set (`UPDATE … WHERE status IN (…)`): a move whose job is no longer in one of
//! them changes nothing. Readers that count jobs still running (quotas, the audit, the
//! gauges) take the set from here too.
//!
//! ```text
//!            create                submit                complete
//!   (new) ──────────▶ queued ──────────────▶ in_progress ──────────▶ completed
//!                      │  ▲  ◀──────────────     │
//!                      │  └──── requeue ─────────┘
//!                      └──── fail | cancel | expire ──▶ failed | canceled
//! ```
//!
//! `completed`, `failed` and `canceled` are final: no move leaves them, so a late upstream
//! answer, a cancel after completion or a stale replica can never change a finished job.

use crate::types::video::VideoStatus;
use VideoStatus::{Canceled, Completed, Failed, InProgress, Queued};

/// A change of a job's status, named after what causes it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Transition {
    /// A create stores the job waiting for its first submit.
    Create,
    /// An upstream accepted the job (a first submit, or a submit again after a lost answer).
    Submit,
    /// The upstream delivered the output.
    Complete,
    /// The upstream refused or failed the job, or it failed too often to retry.
    Fail,
    /// The tenant canceled the job.
    Cancel,
    /// The hold timeout ended a job that ran too long.
    Expire,
    /// A job that failed upstream goes back to the queue for another provider.
    Requeue,
}

/// One row of the table: the statuses a move may start from and the status it leads to.
#[derive(Debug, Clone, Copy)]
pub struct Move {
    pub transition: Transition,
    pub from: &'static [VideoStatus],
    pub to: VideoStatus,
}

/// The statuses of a job that has not ended: it may still be submitted, polled or ended. Writes
/// that keep a job's status (a poll's reschedule, a slot, a switch of provider) are guarded by
/// it, and it is what "running" counts.
pub const IN_FLIGHT: &[VideoStatus] = &[Queued, InProgress];

/// The statuses of a job waiting for a submit, not yet accepted upstream (what a provider's
/// queue counts).
pub const WAITING: &[VideoStatus] = &[Queued];

/// The statuses of a job an upstream accepted and is working on: it is polled until it ends.
pub const UPSTREAM: &[VideoStatus] = &[InProgress];

/// The statuses of a job that ended without output: it is charged nothing and counts no
/// seconds of video.
pub const ENDED_WITHOUT_OUTPUT: &[VideoStatus] = &[Failed, Canceled];

/// Every move a job can make. A job is created `queued`; it ends exactly once.
pub const TABLE: [Move; 7] = [
    Move {
        transition: Transition::Create,
        from: &[],
        to: Queued,
    },
    Move {
        transition: Transition::Submit,
        from: IN_FLIGHT,
        to: InProgress,
    },
    Move {
        transition: Transition::Complete,
        from: IN_FLIGHT,
        to: Completed,
    },
    Move {
        transition: Transition::Fail,
        from: IN_FLIGHT,
        to: Failed,
    },
    Move {
        transition: Transition::Cancel,
        from: IN_FLIGHT,
        to: Canceled,
    },
    Move {
        transition: Transition::Expire,
        from: IN_FLIGHT,
        to: Failed,
    },
    Move {
        transition: Transition::Requeue,
        from: &[InProgress],
        to: Queued,
    },
];

impl Transition {
    /// This transition's row of [`TABLE`].
    pub fn rule(self) -> Move {
        // Every transition has its row (checked by the tests below); `Create` is the fallback
        // only to keep this total without a panic.
        TABLE
            .into_iter()
            .find(|m| m.transition == self)
            .unwrap_or(TABLE[0])
    }

    /// The statuses this transition may start from.
    pub fn from(self) -> &'static [VideoStatus] {
        self.rule().from
    }

    /// The status this transition leads to.
    pub fn to(self) -> VideoStatus {
        self.rule().to
    }

    /// The move as storage applies it: the statuses it may start from, and where it goes.
    pub fn guard(self) -> (&'static [VideoStatus], VideoStatus) {
        let rule = self.rule();
        (rule.from, rule.to)
    }

    /// How a job without output ends with `status` (`failed` or `canceled`) by `cause`.
    pub fn ending(status: VideoStatus, timed_out: bool) -> Transition {
        match (status, timed_out) {
            (Canceled, _) => Transition::Cancel,
            (_, true) => Transition::Expire,
            _ => Transition::Fail,
        }
    }
}

/// The statuses no move leaves.
pub fn finished() -> Vec<VideoStatus> {
    ALL.into_iter()
        .filter(|s| !TABLE.iter().any(|m| m.from.contains(s)))
        .collect()
}

/// Every status a job can have.
pub const ALL: [VideoStatus; 5] = [Queued, InProgress, Completed, Failed, Canceled];

/// Whether the table allows some move from `from` to `to`.
pub fn allowed(from: VideoStatus, to: VideoStatus) -> bool {
    TABLE.iter().any(|m| m.from.contains(&from) && m.to == to)
}

#[cfg(test)]
mod tests {
    use super::*;

    const TRANSITIONS: [Transition; 7] = [
        Transition::Create,
        Transition::Submit,
        Transition::Complete,
        Transition::Fail,
        Transition::Cancel,
        Transition::Expire,
        Transition::Requeue,
    ];

    #[test]
    fn every_transition_has_exactly_one_row() {
        for transition in TRANSITIONS {
            let rows = TABLE.iter().filter(|m| m.transition == transition).count();
            assert_eq!(rows, 1, "{transition:?}");
            assert_eq!(transition.rule().transition, transition);
        }
    }

    #[test]
    fn every_status_is_reachable_from_creation() {
        let mut reached = vec![Transition::Create.to()];
        loop {
            let next: Vec<VideoStatus> = TABLE
                .iter()
                .filter(|m| m.from.iter().any(|s| reached.contains(s)))
                .map(|m| m.to)
                .filter(|s| !reached.contains(s))
                .collect();
            if next.is_empty() {
                break;
            }
            reached.extend(next);
        }
        for status in ALL {
            assert!(reached.contains(&status), "{status:?} is unreachable");
        }
    }

    #[test]
    fn terminal_statuses_have_no_way_out() {
        for status in ALL.into_iter().filter(|s| s.is_terminal()) {
            for to in ALL {
                assert!(!allowed(status, to), "{status:?} → {to:?}");
            }
        }
        assert_eq!(finished(), vec![Completed, Failed, Canceled]);
    }

    #[test]
    fn completed_never_goes_back() {
        for to in ALL {
            assert!(!allowed(Completed, to));
        }
        for m in TABLE {
            assert!(!m.from.contains(&Completed), "{:?}", m.transition);
        }
    }

    #[test]
    fn in_flight_is_exactly_the_statuses_that_can_still_move() {
        for status in ALL {
            assert_eq!(
                IN_FLIGHT.contains(&status),
                !finished().contains(&status),
                "{status:?}"
            );
            assert_eq!(IN_FLIGHT.contains(&status), !status.is_terminal());
        }
    }

    #[test]
    fn a_job_in_flight_is_either_waiting_or_upstream() {
        for status in ALL {
            assert_eq!(
                IN_FLIGHT.contains(&status),
                WAITING.contains(&status) ^ UPSTREAM.contains(&status),
                "{status:?}"
            );
        }
        assert_eq!(Transition::Submit.to(), UPSTREAM[0]);
        assert_eq!(Transition::Create.to(), WAITING[0]);
    }

    #[test]
    fn the_ends_without_output_are_where_fail_cancel_and_expire_lead() {
        let ends = [Transition::Fail, Transition::Cancel, Transition::Expire].map(Transition::to);
        for status in ALL {
            assert_eq!(
                ends.contains(&status),
                ENDED_WITHOUT_OUTPUT.contains(&status),
                "{status:?}"
            );
        }
    }

    #[test]
    fn endings_name_their_cause() {
        assert_eq!(Transition::ending(Canceled, false), Transition::Cancel);
        assert_eq!(Transition::ending(Failed, true), Transition::Expire);
        assert_eq!(Transition::ending(Failed, false), Transition::Fail);
        assert_eq!(Transition::Expire.to(), Failed);
        assert_eq!(Transition::Requeue.from(), &[InProgress]);
    }
}
