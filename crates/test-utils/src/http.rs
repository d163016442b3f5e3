//! Stand-in HTTP servers for tests.

/// Serves `app` on a free loopback port from a thread of its own (a one-worker runtime that lives as long as the
/// test process); returns its base URL, `http://127.0.0.1:PORT`.
pub fn serve_in_background(app: axum::Router) -> String {
    let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("binding a loopback port");
    listener
        .set_nonblocking(true)
        .expect("non-blocking listener");
    let url = format!("http://{}", listener.local_addr().expect("local address"));
    std::thread::spawn(move || {
        let rt = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(1)
            .enable_all()
            .build()
            .expect("a tokio runtime");
        rt.block_on(async move {
            let l = tokio::net::TcpListener::from_std(listener).expect("a tokio listener");
            axum::serve(l, app).await.expect("serving");
        });
    });
    url
}
