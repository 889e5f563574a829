//! Apps: named ensembles of pinned model versions, served like a model.
//!
//! An app lists its members (model, version) and an ensemble rule. Every
//! request to an app runs all members inside one committed entry and the
//! rule combines their outputs on every replica, so replicas agree and the
//! digest covers the combined answer. Changing the members is one entry:
//! requests before it used the old members, requests after it the new.

use std::collections::BTreeMap;

use boat_serving::EnsembleRule;
use serde::{Deserialize, Serialize};

use super::catalog::Catalog;
use crate::domains::Refusal;

/// One member of an app: a model version, pinned.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AppMember {
    pub model: String,
    pub version: u64,
}

impl std::fmt::Display for AppMember {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}:{}", self.model, self.version)
    }
}

/// An app as the replicated state holds it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct App {
    pub name: String,
    /// The user who created it.
    pub owner: u64,
    pub members: Vec<AppMember>,
    pub rule: EnsembleRule,
    /// A stopped app refuses predictions.
    pub running: bool,
    /// Predictions need a bearer token (any role).
    pub requires_token: bool,
    /// Starts at 1 and grows with every change of members; the answers
    /// report it as the version that ran.
    pub revision: u64,
    pub created_at_ms: u64,
    /// Log index of the last change.
    pub index: u64,
}

/// The apps of the cluster, by name.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Apps {
    pub apps: BTreeMap<String, App>,
}

/// Largest number of members an app may have: each request runs them all.
pub const MAX_APP_MEMBERS: usize = 8;

impl Apps {
    /// Checks that every member names an existing version.
    pub fn check_members(catalog: &Catalog, members: &[AppMember]) -> Result<(), Refusal> {
        if members.is_empty() || members.len() > MAX_APP_MEMBERS {
            return Err(Refusal::conflict(format!("an app has 1 to {MAX_APP_MEMBERS} members, not {}", members.len())));
        }
        for m in members {
            let exists = catalog.models.get(&m.model).is_some_and(|e| e.versions.contains_key(&m.version));
            if !exists {
                return Err(Refusal::not_found(format!("model {} has no version {}", m.model, m.version)));
            }
        }
        Ok(())
    }

    pub fn create(&mut self, catalog: &Catalog, mut app: App, index: u64) -> Result<&App, Refusal> {
        if self.apps.contains_key(&app.name) {
            return Err(Refusal::conflict(format!("an app named {:?} exists", app.name)));
        }
        if catalog.models.contains_key(&app.name) {
            return Err(Refusal::conflict(format!("{:?} is a model's name; an app needs its own", app.name)));
        }
        Self::check_members(catalog, &app.members)?;
        app.revision = 1;
        app.index = index;
        let name = app.name.clone();
        Ok(self.apps.entry(name).or_insert(app))
    }

    pub fn set_members(
        &mut self,
        catalog: &Catalog,
        name: &str,
        members: Vec<AppMember>,
        index: u64,
    ) -> Result<&App, Refusal> {
        Self::check_members(catalog, &members)?;
        let app = self.apps.get_mut(name).ok_or_else(|| Refusal::not_found(format!("no app {name:?}")))?;
        app.members = members;
        app.revision += 1;
        app.index = index;
        Ok(app)
    }

    pub fn set_running(&mut self, name: &str, running: bool, index: u64) -> Result<&App, Refusal> {
        let app = self.apps.get_mut(name).ok_or_else(|| Refusal::not_found(format!("no app {name:?}")))?;
        app.running = running;
        app.index = index;
        Ok(app)
    }

    pub fn delete(&mut self, name: &str) -> Result<App, Refusal> {
        self.apps.remove(name).ok_or_else(|| Refusal::not_found(format!("no app {name:?}")))
    }

    /// The app using this model version, if any: such a version cannot be
    /// deleted.
    pub fn user_of(&self, model: &str, version: u64) -> Option<&App> {
        self.apps.values().find(|a| a.members.iter().any(|m| m.model == model && m.version == version))
    }
}
