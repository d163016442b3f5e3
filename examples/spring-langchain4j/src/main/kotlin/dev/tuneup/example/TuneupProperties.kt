package dev.tuneup.example

import org.springframework.boot.context.properties.ConfigurationProperties
import java.time.Duration

/**
 * Where `tuneup serve` is and how to call it (`tuneup.*` in application.properties, which reads
 * `TUNEUP_BASE_URL`, `TUNEUP_API_KEY` and `TUNEUP_MODEL` from the environment).
 */
@ConfigurationProperties("tuneup")
data class TuneupProperties(
    /** The server's OpenAI base URL, `/v1` included, e.g. `http://127.0.0.1:8080/v1`. */
    val baseUrl: String,
    /** The server's `--api-key`; any non-empty string when it has none. */
    val apiKey: String,
    /** The model id the server serves (`--model-id`, else its `-m` name). */
    val model: String,
    /** How long one request may take (a small model on a CPU can take a while). */
    val timeout: Duration,
    /** Log each HTTP request and response body (logger `dev.langchain4j`, at INFO and above). */
    val logHttp: Boolean = false,
)
