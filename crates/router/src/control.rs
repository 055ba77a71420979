//! The control channel from the router's parent (`liege_proto::router`): settings and route
//! tables in, `Applied` answers and per-vassal counters (every second while they change) out.

use std::sync::Arc;
use std::time::Duration;

use liege_proto::router::{FrameDecoder, FromRouter, ToRouter, encode};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::UnixStream;

use crate::RouterError;
use crate::config;
use crate::shared::Shared;

/// How often counters are sent (when they changed).
const COUNTERS_EVERY: Duration = Duration::from_secs(1);

/// Reads the control channel until it closes (`Ok`), fails, or carries a frame that is not a
/// message.
pub(crate) async fn run(shared: Arc<Shared>, stream: UnixStream) -> Result<(), RouterError> {
    let (mut rd, mut wr) = stream.into_split();
    let mut decoder = FrameDecoder::new();
    let mut buf = vec![0u8; 64 * 1024];
    let mut tick = tokio::time::interval(COUNTERS_EVERY);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    let mut last = Vec::new();
    loop {
        tokio::select! {
            r = rd.read(&mut buf) => {
                let n = match r {
                    Ok(n) => n,
                    Err(e) if gone(&e) => 0,
                    Err(e) => return Err(RouterError::Control(e)),
                };
                if n == 0 {
                    return Ok(());
                }
                decoder.feed(&buf[..n]);
                while let Some(msg) = decoder.next_message::<ToRouter>()? {
                    if let Some(answer) = apply(&shared, msg).await
                        && let Err(e) = wr.write_all(&encode(&answer)).await
                    {
                        return if gone(&e) { Ok(()) } else { Err(RouterError::Control(e)) };
                    }

                }
            }
            _ = tick.tick() => {
                let now = shared.registry.lock().unwrap_or_else(|e| e.into_inner()).counters_snapshot();
                if now != last {
                    if let Err(e) = wr.write_all(&encode(&FromRouter::Counters(now.clone()))).await {
                        return if gone(&e) { Ok(()) } else { Err(RouterError::Control(e)) };
                    }
                    last = now;
                }
            }
        }
    }
}

/// Whether an error means the parent closed its end (a close with unread messages is a
/// reset): the router stops as when it reads the end.
fn gone(e: &std::io::Error) -> bool {
    matches!(
        e.kind(),
        std::io::ErrorKind::ConnectionReset | std::io::ErrorKind::BrokenPipe
    )
}

/// Applies one message; the answer to send, if any.
async fn apply(shared: &Shared, msg: ToRouter) -> Option<FromRouter> {
    match msg {
        ToRouter::Settings(s) => {
            let error = match config::build(&s, &shared.registry, &shared.resumption).await {
                Ok(cfg) => {
                    shared.config.store(Arc::new(cfg));
                    None
                }
                Err(e) => {
                    shared.log.error(format_args!(
                        "settings not applied (the old ones stay): {e}"
                    ));
                    Some(e.to_string())
                }
            };
            Some(FromRouter::Applied { error })
        }
        ToRouter::Routes(routes) => {
            *shared.routes.lock().unwrap_or_else(|e| e.into_inner()) = routes;
            shared.rebuild();
            None
        }
    }
}
