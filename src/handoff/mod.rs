//! Moving data between nodes outside the request path: ownership transfer when the
//! member list changes (hinted handoff joins it in a later step).

pub mod transfer;
