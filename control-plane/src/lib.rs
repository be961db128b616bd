//! IntentGate control plane.
