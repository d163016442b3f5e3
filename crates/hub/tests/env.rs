//! `Cache::from_env` honours `TUNEUP_HOME` (own test binary: it sets the environment).

#[test]
fn tuneup_home_overrides_the_platform_cache_dir() {
    std::env::set_var("TUNEUP_HOME", "/some/where");
    let cache = tuneup_hub::Cache::from_env().unwrap();
    assert_eq!(cache.root(), std::path::Path::new("/some/where"));
    assert_eq!(
        cache.model_dir("smollm2-135m"),
        std::path::Path::new("/some/where/models/smollm2-135m")
    );

    std::env::set_var("TUNEUP_HOME", "");
    let cache = tuneup_hub::Cache::from_env().unwrap();
    assert_eq!(cache.root(), dirs::cache_dir().unwrap().join("tuneup"));
    std::env::remove_var("TUNEUP_HOME");
    assert_eq!(tuneup_hub::Cache::from_env().unwrap(), cache);
}
