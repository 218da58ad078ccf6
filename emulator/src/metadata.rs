//! ARM's cloud metadata, `GET /metadata/endpoints?api-version=…`: where a client learns a cloud's
//! login endpoint, ARM audiences and resource manager URL (`az cloud register` reads it unless
//! told `--skip-endpoint-discovery`). Anonymous, like ARM's.

use std::collections::HashMap;

use axum::extract::{Query, State};
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use serde_json::{Value, json};

use crate::server::tag;
use crate::state::Shared;

/// The name the emulator's cloud gives itself (az keeps the name it was registered under).
pub const CLOUD_NAME: &str = "KubeinvokeEmulator";

/// The versions whose answer is one cloud object, and the one whose answer is a list of clouds.
const OBJECT_VERSIONS: [&str; 2] = ["2022-09-01", "2020-06-01"];
const LIST_VERSION: &str = "2019-05-01";

/// The emulator's cloud in ARM's metadata shape. Only what the emulator serves is listed: no
/// Graph, portal, storage or database endpoints (clients fall back or leave them unset).
pub fn cloud(base_url: &str) -> Value {
    let base = format!("{}/", base_url.trim_end_matches('/'));
    json!({
        "name": CLOUD_NAME,
        "resourceManager": base,
        "authentication": {
            "loginEndpoint": base,
            // The public cloud's ARM audiences, which the emulator's token endpoint accepts.
            "audiences": ["https://management.core.windows.net/", "https://management.azure.com/"],
            "tenant": "common",
            "identityProvider": "AAD",
        },
        "suffixes": {},
    })
}

/// `GET /metadata/endpoints?api-version=…`
pub async fn endpoints(
    State(state): State<Shared>,
    Query(query): Query<HashMap<String, String>>,
) -> Response {
    let op = "arm.metadata";
    let resp = match query.get("api-version").map(String::as_str) {
        None | Some("") => crate::arm::arm_error(
            StatusCode::BAD_REQUEST,
            "MissingApiVersionParameter",
            "The api-version query parameter (?api-version=) is required for all requests.",
        ),
        Some(v) if OBJECT_VERSIONS.contains(&v) => {
            axum::Json(cloud(&state.settings.base_url)).into_response()
        }
        Some(LIST_VERSION) => axum::Json(json!([cloud(&state.settings.base_url)])).into_response(),
        Some(v) => crate::arm::arm_error(
            StatusCode::BAD_REQUEST,
            "InvalidApiVersionParameter",
            format!(
                "The api-version '{v}' is invalid. The supported versions are '{}'.",
                [OBJECT_VERSIONS.as_slice(), &[LIST_VERSION]]
                    .concat()
                    .join(",")
            ),
        ),
    };
    tag(resp, op, None)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cloud_points_everything_at_the_emulator() {
        let c = cloud("https://127.0.0.1:4443");
        assert_eq!(c["resourceManager"], "https://127.0.0.1:4443/");
        assert_eq!(
            c["authentication"]["loginEndpoint"],
            "https://127.0.0.1:4443/"
        );
        assert_eq!(
            c["authentication"]["audiences"][0],
            "https://management.core.windows.net/"
        );
        assert!(c["suffixes"].is_object());
    }
}
