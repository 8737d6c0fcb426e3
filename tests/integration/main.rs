//! The integration tests that start real nodes (in process or as `cartwheel`
//! processes) and judge only behaviour, linked as one binary: each file here was a test
//! binary of its own, and every one of them linked the whole crate again. The tests
//! that judge time or load (chaos, abuse, the edge's timeouts, the session security
//! races, the bench) stay binaries of their own, so that libtest never runs them beside
//! these.

#[path = "../common/mod.rs"]
mod common;

mod api;
mod bundles;
mod cluster;
mod config_file;
mod contexts;
mod edge_tls;
mod feed;
mod handoff;
mod logs;
mod membership;
mod metrics;
mod near_cache;
mod netns;
mod pipeline;
mod repair;
mod resp;
mod resp_cli;
mod resp_data;
mod resp_middleware;
mod resp_scan;
mod resp_tracking;
mod security;
mod session;
mod session_regions;
mod ui;
