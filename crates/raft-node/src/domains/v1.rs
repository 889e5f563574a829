//! The applied state as snapshot format 1 laid it out, frozen, so that
//! snapshots written by format-1 binaries still decode. Format 2 added the
//! serving domain's apps and the platform domain, format 3 the training
//! domain.

use serde::Deserialize;

use super::integrity::Integrity;
use super::serving::{Catalog, RecordWindow, ServingState};
use super::AppliedState;
use crate::types::{LogId, StoredMembership};

#[derive(Deserialize)]
pub(crate) struct AppliedStateV1 {
    last_applied: Option<LogId>,
    membership: StoredMembership,
    serving: ServingStateV1,
    integrity: Integrity,
}

#[derive(Deserialize)]
struct ServingStateV1 {
    catalog: Catalog,
    records: RecordWindow,
    predictions_run: u64,
    digest: String,
}

impl From<AppliedStateV1> for AppliedState {
    fn from(v1: AppliedStateV1) -> Self {
        let ServingStateV1 { catalog, records, predictions_run, digest } = v1.serving;
        AppliedState {
            last_applied: v1.last_applied,
            membership: v1.membership,
            serving: ServingState::from_v1(catalog, records, predictions_run, digest),
            integrity: v1.integrity,
            platform: Default::default(),
            training: Default::default(),
        }
    }
}
