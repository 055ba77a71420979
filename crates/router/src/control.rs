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
                let n = r.map_err(RouterError::Control)?;
                if n == 0 {
                    return Ok(());
                }
                decoder.feed(&buf[..n]);
                while let Some(msg) = decoder.next_message::<ToRouter>()? {
                    if let Some(answer) = apply(&shared, msg).await {
                        wr.write_all(&encode(&answer)).await.map_err(RouterError::Control)?;
                    }
                }
            }
            _ = tick.tick() => {
                let now = shared.registry.lock().unwrap_or_else(|e| e.into_inner()).counters_snapshot();
                if now != last {
                    wr.write_all(&encode(&FromRouter::Counters(now.clone()))).await.map_err(RouterError::Control)?;
                    last = now;
                }
            }
        }
    }
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
            let cfg = shared.config.load();
            let table = shared
                .registry
                .lock()
                .unwrap_or_else(|e| e.into_inner())
                .table(&routes, cfg.http_to_nodes());
            shared.set_table(table);
            None
        }
    }
}
