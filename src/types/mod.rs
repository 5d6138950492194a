//! The bottom layer: plain types every other layer may name — identifiers, amounts of money
//! and the mode they belong to, the vocabulary of a video request and its lifecycle, and
//! calendar days. Each is valid by construction and carries no rule that needs the database,
//! a provider or the configuration; those live in the domain, which gives these types their
//! meaning.

pub mod ids;
pub mod money;
pub mod time;
pub mod video;
