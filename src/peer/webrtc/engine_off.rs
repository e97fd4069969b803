//! Stands in for the peer connections in a build without the `webrtc` cargo feature: the
//! same API, and `--webrtc` fails with how to get a build that has it.

use std::time::Instant;

use super::report::{Happening, Stage};

/// Never made: [`WebRtc::bind`] always fails.
pub enum WebRtc {}

pub enum Wake {}

#[derive(Debug, thiserror::Error)]
#[error("{0}")]
pub struct WebRtcError(pub String);

impl WebRtc {
    pub async fn bind() -> std::io::Result<Self> {
        Err(std::io::Error::other(
            "this rdv was built without WebRTC; rebuild with the `webrtc` cargo feature \
             (it is on by default)",
        ))
    }

    pub fn local_candidates(&self) -> Vec<String> {
        match *self {}
    }

    pub fn set_relay_only(&mut self, _relay_only: bool) {
        match *self {}
    }

    pub async fn allocate_relays(&mut self, _ice_servers: &serde_json::Value) -> Vec<String> {
        match *self {}
    }

    pub fn has_link(&self, _peer: &str) -> bool {
        match *self {}
    }

    pub fn any_link(&self) -> bool {
        match *self {}
    }

    pub fn offer(&mut self, _peer: &str) -> Result<String, WebRtcError> {
        match *self {}
    }

    pub fn answer(
        &mut self,
        _me: &str,
        _peer: &str,
        _sdp: &str,
    ) -> Result<Option<String>, WebRtcError> {
        match *self {}
    }

    pub fn take_answer(&mut self, _peer: &str, _sdp: &str) -> Result<(), WebRtcError> {
        match *self {}
    }

    pub fn add_candidate(&mut self, _peer: &str, _line: &str) -> Result<(), WebRtcError> {
        match *self {}
    }

    pub fn send(&mut self, _text: String) -> bool {
        match *self {}
    }

    pub fn unfinished(&self) -> Vec<(String, Stage)> {
        match *self {}
    }

    pub async fn flush(&mut self) {
        match *self {}
    }

    pub fn handle(&mut self, _wake: Wake) -> (Vec<Happening>, Instant) {
        match *self {}
    }
}

/// Waits forever: there are never peer connections.
pub async fn wait_any(_webrtc: &Option<WebRtc>, _until: tokio::time::Instant) -> Wake {
    std::future::pending().await
}
