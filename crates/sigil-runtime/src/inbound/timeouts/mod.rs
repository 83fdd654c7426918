//! Per-connection timeouts. [`Activity`] records what a connection is doing
//! (requests in flight, a request head arriving, output the client is not
//! taking); [`TimedIo`] feeds it from the socket and [`ResponseBody`] from
//! the responses being sent; [`Watchdog`] turns it into the connection's next
//! deadline. [`IdleTimeoutBody`] bounds the gaps in a request body.

mod activity;
mod io;
mod request_body;
mod response_body;
mod watchdog;

pub(crate) use activity::Activity;
pub(crate) use io::TimedIo;
pub(crate) use request_body::{BodyIdleTimeout, BodyTimeout, IdleTimeoutBody};
pub(crate) use response_body::ResponseBody;
pub(crate) use watchdog::{Verdict, Watchdog};

use crate::telemetry::metrics::{CloseReason, ConnectionClosedLabels, Listener, metrics};

/// Count a connection Sigil closed itself in `sigil_inbound_connections_closed_total`.
pub(crate) fn count_closed(listener: Listener, reason: CloseReason) {
    metrics()
        .connections
        .connections_closed
        .get_or_create(&ConnectionClosedLabels { listener, reason })
        .inc();
}
