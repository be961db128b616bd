//! intentgate.v1 protocol.
