//! Moving data between nodes outside the request path: hinted handoff for replicas
//! that were down, and ownership transfer when the member list changes.

pub mod hints;
pub mod page;
pub mod transfer;
