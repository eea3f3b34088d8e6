//! One module per subcommand.

pub mod average;
pub mod bench;
pub mod eval;
pub mod export;
pub mod generate;
pub mod inspect;
pub mod plot;
pub mod score;
pub mod serve;
pub mod train;
pub mod transcripts;
