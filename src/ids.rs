//! Names shared by every module: node ids, region names, partition ids, data classes.
//!
//! These are plain values with no behaviour beyond validation and hashing; they must
//! never carry I/O or clock access.

use serde::{Deserialize, Serialize};
use std::fmt;

/// A node's stable id, e.g. `us-east-1`. Also the DNS name in its TLS certificate, so it
/// is restricted to lowercase letters, digits and `-` (1..=63 characters).
#[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
pub struct NodeId(pub String);

/// A region's name, e.g. `us-east`. Same character rules as [`NodeId`].
#[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
pub struct Region(pub String);

/// One of the Q fixed partitions of the hash space.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
pub struct PartitionId(pub u32);

/// Why a name was refused.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum NameError {
    #[error("name {0:?} is empty or longer than 63 characters")]
    Length(String),
    #[error("name {0:?} may hold only lowercase letters, digits and '-', and may not start or end with '-'")]
    Characters(String),
}

/// Checks the shared rule for node ids and region names (a DNS label).
pub fn validate_name(name: &str) -> Result<(), NameError> {
    if name.is_empty() || name.len() > 63 {
        return Err(NameError::Length(name.to_string()));
    }
    let allowed = |c: char| c.is_ascii_lowercase() || c.is_ascii_digit() || c == '-';
    if !name.chars().all(allowed) || name.starts_with('-') || name.ends_with('-') {
        return Err(NameError::Characters(name.to_string()));
    }
    Ok(())
}

impl NodeId {
    pub fn new(name: &str) -> Result<Self, NameError> {
        validate_name(name)?;
        Ok(NodeId(name.to_string()))
    }
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl Region {
    pub fn new(name: &str) -> Result<Self, NameError> {
        validate_name(name)?;
        Ok(Region(name.to_string()))
    }
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for NodeId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl fmt::Display for Region {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl fmt::Display for PartitionId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "p{}", self.0)
    }
}

#[cfg(test)]
mod tests;
