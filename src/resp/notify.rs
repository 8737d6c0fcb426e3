//! What RESP client tracking and keyspace notifications decide, without I/O: the
//! `CLIENT TRACKING` options and their checks ([`tracking`]), the node's
//! `notify-keyspace-events` flags and the messages a change makes ([`events`]), and a
//! connection's channels and patterns ([`pubsub`]).
//!
//! It never touches a socket, the hub or the store: [`super::pushes`] carries out what
//! it decides for one connection.

pub mod events;
pub mod pubsub;
pub mod tracking;

#[cfg(test)]
mod tests;
