//! Readiness: a state that can be used says so.

use crate::Backend;

async fn a_usable_state_reports_ready(backend: &Backend) {
    backend.state().check().await.expect("the state is ready");
}

crate::conformance!(a_usable_state_reports_ready);
