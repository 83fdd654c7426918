//! What Sigil tells its operators: metrics (typed label sets, rendered on
//! the admin listener) and logs (`tracing`, text or JSON).

pub mod log_format;
pub mod log_rate;
pub mod log_time;
pub mod log_writer;
pub mod logging;
pub mod metrics;

pub use metrics::metrics;
