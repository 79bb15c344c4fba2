//! The SamNet model on the GPU: its parameters, and the forward and backward
//! passes recorded as one program per training step.

pub mod params;
