//! `ferrite serve`: an OpenAI-compatible HTTP server (axum + tokio) in front of the
//! continuous-batching engine ([`ferrite_engine`]), plus a small web chat UI served at `/`.
//!
//! [`run`] binds the port first (so `/health` answers 503 while the model loads), loads the
//! model on a blocking thread, starts the engine and serves until SIGTERM / Ctrl-C, when it
//! stops accepting, cancels running streams and returns.

mod api;
mod embed;
mod error;
mod params;

use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::{Arc, Mutex, OnceLock};
use std::thread::JoinHandle;
use std::time::Duration;

use ferrite_chat::ChatTemplate;
use ferrite_engine::{Engine, EngineParams};
use ferrite_models::Model;
use ferrite_tokenizer::Tokenizer;

pub use api::router;
pub use error::ApiError;

/// Everything `ferrite serve` is told.
#[derive(Debug, Clone)]
pub struct ServeConfig {
    pub model_path: PathBuf,
    pub host: String,
    pub port: u16,
    /// Slots (requests decoded together).
    pub n_parallel: usize,
    /// Context size of all slots together (default: the model's, at most 4096, times nothing:
    /// each slot gets `n_ctx / n_parallel`).
    pub n_ctx: Option<usize>,
    pub n_threads: usize,
    pub n_batch: usize,
    pub max_queue: usize,
    pub api_key: Option<String>,
    /// The model name clients use (default: the file name).
    pub alias: Option<String>,
    /// A built-in template name or a template file, for models without one or to override.
    pub chat_template: Option<String>,
    /// KV cache element type: F16 (llama.cpp's default) or F32.
    pub kv_type: ferrite_gguf::GgmlType,
}

#[derive(Debug, thiserror::Error)]
pub enum ServeError {
    #[error("binding {addr}: {source}")]
    Bind {
        addr: String,
        source: std::io::Error,
    },
    #[error("{0}")]
    Io(#[from] std::io::Error),
    #[error("loading the model: {0}")]
    Load(String),
}

/// The loaded model and the engine running it.
pub struct Ready {
    pub engine: Engine,
    pub tok: Arc<Tokenizer>,
    pub model: Arc<Model>,
    /// The chat template, or why there is none (a 400 for chat requests).
    pub template: Result<ChatTemplate, String>,
    pub n_ctx_train: usize,
    /// Encoder (embedding) models: `/v1/embeddings` runs here; completions answer 400.
    pub embedder: Option<embed::EmbedWorker>,
    engine_thread: Mutex<Option<JoinHandle<()>>>,
}

/// Shared by every handler.
pub struct AppState {
    pub model_id: String,
    pub file_name: String,
    pub api_key: Option<String>,
    pub created: u64,
    ready: OnceLock<Arc<Ready>>,
    next_id: AtomicU64,
    shutting_down: AtomicBool,
}

impl AppState {
    pub fn new(model_id: String, file_name: String, api_key: Option<String>) -> AppState {
        let created = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_secs());
        AppState {
            model_id,
            file_name,
            api_key,
            created,
            ready: OnceLock::new(),
            next_id: AtomicU64::new(1),
            shutting_down: AtomicBool::new(false),
        }
    }

    pub fn ready(&self) -> Option<&Arc<Ready>> {
        self.ready.get()
    }

    pub fn set_ready(&self, r: Ready) {
        let _ = self.ready.set(Arc::new(r));
    }

    fn next_id(&self) -> u64 {
        self.next_id.fetch_add(1, Ordering::Relaxed)
    }

    /// Stop the engine: running and queued requests end with an error.
    pub fn shutdown(&self) {
        self.shutting_down.store(true, Ordering::SeqCst);
        if let Some(r) = self.ready() {
            r.engine.shutdown();
        }
    }

    fn join_engine(&self) {
        if let Some(r) = self.ready() {
            let h = r
                .engine_thread
                .lock()
                .unwrap_or_else(|e| e.into_inner())
                .take();
            if let Some(h) = h {
                let _ = h.join();
            }
        }
    }
}

/// Load the model, its tokenizer and template, and start the engine.
pub fn load(cfg: &ServeConfig) -> Result<Ready, ServeError> {
    let path = &cfg.model_path;
    let model =
        Model::open(path).map_err(|e| ServeError::Load(format!("{}: {e}", path.display())))?;
    let meta = model.gguf().meta();
    let tok = Tokenizer::from_gguf(meta)
        .map_err(|e| ServeError::Load(format!("tokenizer of {}: {e}", path.display())))?;
    let template = match &cfg.chat_template {
        Some(spec) => Ok(ChatTemplate::for_model(meta, Some(spec))
            .map_err(|e| ServeError::Load(format!("chat template {spec}: {e}")))?),
        None => ChatTemplate::for_model(meta, None).map_err(|e| e.to_string()),
    };
    if let Err(why) = &template {
        eprintln!("ferrite serve: /v1/chat/completions disabled: {why}");
    }
    let n_ctx_train = model.hp.n_ctx_train;
    let n_ctx = cfg.n_ctx.unwrap_or(n_ctx_train.min(4096)).max(16);
    let model = Arc::new(model);
    let tok = Arc::new(tok);
    let embedder = if model.hp.arch.is_encoder() {
        Some(
            embed::EmbedWorker::start(model.clone(), cfg.n_threads, cfg.n_batch, cfg.n_ctx)
                .map_err(|e| ServeError::Load(format!("{}: {e}", path.display())))?,
        )
    } else {
        None
    };
    let (engine, thread) = Engine::start(
        model.clone(),
        tok.clone(),
        EngineParams {
            n_ctx,
            n_parallel: cfg.n_parallel.max(1),
            n_batch: cfg.n_batch.max(1),
            n_threads: cfg.n_threads.max(1),
            max_queue: cfg.max_queue,
            kv_type: cfg.kv_type,
        },
    )
    .map_err(|e| ServeError::Load(e.to_string()))?;
    Ok(Ready {
        engine,
        tok,
        model,
        template,
        n_ctx_train,
        embedder,
        engine_thread: Mutex::new(Some(thread)),
    })
}

async fn shutdown_signal() {
    let ctrl_c = async {
        let _ = tokio::signal::ctrl_c().await;
    };
    #[cfg(unix)]
    let term = async {
        match tokio::signal::unix::signal(tokio::signal::unix::SignalKind::terminate()) {
            Ok(mut s) => {
                s.recv().await;
            }
            Err(_) => std::future::pending::<()>().await,
        }
    };
    #[cfg(not(unix))]
    let term = std::future::pending::<()>();
    tokio::select! {
        _ = ctrl_c => {},
        _ = term => {},
    }
}

/// Serve until SIGTERM / Ctrl-C (or a model that fails to load).
pub fn run(cfg: ServeConfig) -> Result<(), ServeError> {
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()?;
    let file_name = cfg.model_path.file_name().map_or_else(
        || cfg.model_path.display().to_string(),
        |f| f.to_string_lossy().into_owned(),
    );
    let model_id = cfg.alias.clone().unwrap_or_else(|| file_name.clone());
    let state = Arc::new(AppState::new(model_id, file_name, cfg.api_key.clone()));
    let result = rt.block_on(async {
        let addr = format!("{}:{}", cfg.host, cfg.port);
        let listener = tokio::net::TcpListener::bind(&addr)
            .await
            .map_err(|source| ServeError::Bind {
                addr: addr.clone(),
                source,
            })?;
        let local = listener.local_addr()?;
        eprintln!(
            "ferrite serve: listening on http://{local} (loading {})",
            cfg.model_path.display()
        );
        let stop = Arc::new(tokio::sync::Notify::new());
        let load_error: Arc<Mutex<Option<ServeError>>> = Arc::new(Mutex::new(None));
        {
            let (state, stop, load_error, cfg) =
                (state.clone(), stop.clone(), load_error.clone(), cfg.clone());
            tokio::spawn(async move {
                let t0 = std::time::Instant::now();
                match tokio::task::spawn_blocking(move || load(&cfg)).await {
                    Ok(Ok(ready)) => {
                        eprintln!(
                            "ferrite serve: model loaded in {:.2} s: {} slots of {} tokens; ready",
                            t0.elapsed().as_secs_f64(),
                            ready.engine.n_parallel(),
                            ready.engine.n_ctx_slot()
                        );
                        state.set_ready(ready);
                        if state.shutting_down.load(Ordering::SeqCst) {
                            state.shutdown();
                        }
                    }
                    Ok(Err(e)) => {
                        *load_error.lock().unwrap_or_else(|e| e.into_inner()) = Some(e);
                        stop.notify_one();
                    }
                    Err(e) => {
                        *load_error.lock().unwrap_or_else(|e| e.into_inner()) =
                            Some(ServeError::Load(format!("the loader panicked: {e}")));
                        stop.notify_one();
                    }
                }
            });
        }
        {
            let (state, stop) = (state.clone(), stop.clone());
            tokio::spawn(async move {
                shutdown_signal().await;
                eprintln!("ferrite serve: shutting down");
                state.shutdown();
                stop.notify_one();
                // Streams end once the engine cancels them; never hang on a stuck client.
                tokio::time::sleep(Duration::from_secs(10)).await;
                eprintln!("ferrite serve: connections still open after 10 s; exiting");
                std::process::exit(0);
            });
        }
        let app = router(state.clone());
        axum::serve(listener, app)
            .with_graceful_shutdown(async move { stop.notified().await })
            .await?;
        let err = load_error.lock().unwrap_or_else(|e| e.into_inner()).take();
        match err {
            Some(e) => Err(e),
            None => Ok(()),
        }
    });
    state.shutdown();
    state.join_engine();
    rt.shutdown_timeout(Duration::from_secs(1));
    result
}
