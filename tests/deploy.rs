//! The deploy supervisor and reset script.
