//! The applied state as snapshot format 2 laid it out, frozen, so that
//! snapshots written by format-2 binaries still decode. Format 3 added the
//! training domain.

use serde::Deserialize;

use super::integrity::Integrity;
use super::platform::PlatformState;
use super::serving::ServingState;
use super::AppliedState;
use crate::types::{LogId, StoredMembership};

#[derive(Deserialize)]
pub(crate) struct AppliedStateV2 {
    last_applied: Option<LogId>,
    membership: StoredMembership,
    serving: ServingState,
    integrity: Integrity,
    platform: PlatformState,
}

impl From<AppliedStateV2> for AppliedState {
    fn from(v2: AppliedStateV2) -> Self {
        AppliedState {
            last_applied: v2.last_applied,
            membership: v2.membership,
            serving: v2.serving,
            integrity: v2.integrity,
            platform: v2.platform,
            training: Default::default(),
        }
    }
}
