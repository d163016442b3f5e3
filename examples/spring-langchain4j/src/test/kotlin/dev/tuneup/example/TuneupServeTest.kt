package dev.tuneup.example

import dev.langchain4j.data.message.AiMessage
import dev.langchain4j.data.message.ToolExecutionResultMessage
import dev.langchain4j.model.chat.response.ChatResponse
import dev.langchain4j.model.chat.response.StreamingChatResponseHandler
import dev.langchain4j.model.openai.OpenAiChatModel
import dev.langchain4j.model.openai.OpenAiStreamingChatModel
import dev.langchain4j.model.output.FinishReason
import org.assertj.core.api.Assertions.assertThat
import org.junit.jupiter.api.BeforeAll
import org.junit.jupiter.api.Test
import org.springframework.beans.factory.annotation.Autowired
import org.springframework.boot.test.context.SpringBootTest
import java.net.URI
import java.net.http.HttpClient
import java.net.http.HttpRequest
import java.net.http.HttpResponse
import java.util.concurrent.CompletableFuture
import java.util.concurrent.CopyOnWriteArrayList
import java.util.concurrent.TimeUnit

/**
 * The example against a running `tuneup serve` (Qwen2.5-Coder-0.5B, greedy): `scripts/test-langchain4j.sh`
 * starts the server and sets `TUNEUP_BASE_URL`. Every call goes over HTTP through LangChain4j's OpenAI client.
 */
@SpringBootTest(properties = ["logging.level.root=WARN"])
class TuneupServeTest {
    @Autowired lateinit var chatModel: OpenAiChatModel
    @Autowired lateinit var streamingChatModel: OpenAiStreamingChatModel
    @Autowired lateinit var assistant: WeatherAssistant
    @Autowired lateinit var capitals: CapitalFinder
    @Autowired lateinit var weather: WeatherTool
    @Autowired lateinit var conversations: Conversations

    @Test
    fun `plain chat answers`() {
        val answer = chatModel.chat("What is 2 + 3? Answer with the number only.")
        assertThat(answer).contains("5")
    }

    @Test
    fun `streaming delivers the answer in several chunks, the same as the blocking call`() {
        val prompt = "Name three primes."
        val chunks = CopyOnWriteArrayList<String>()
        val done = CompletableFuture<ChatResponse>()
        streamingChatModel.chat(
            prompt,
            object : StreamingChatResponseHandler {
                override fun onPartialResponse(partialResponse: String) {
                    chunks += partialResponse
                }

                override fun onCompleteResponse(completeResponse: ChatResponse) {
                    done.complete(completeResponse)
                }

                override fun onError(error: Throwable) {
                    done.completeExceptionally(error)
                }
            },
        )
        val response = done.get(5, TimeUnit.MINUTES)
        val text = response.aiMessage().text()
        assertThat(chunks).hasSizeGreaterThan(1)
        assertThat(chunks.joinToString("")).isEqualTo(text)
        assertThat(response.finishReason()).isEqualTo(FinishReason.STOP)
        // stream_options.include_usage: the last chunk carries the token counts.
        assertThat(response.tokenUsage().outputTokenCount()).isGreaterThan(1)
        // Greedy decoding: the blocking endpoint gives the same text.
        assertThat(chatModel.chat(prompt)).isEqualTo(text)
    }

    @Test
    fun `JSON schema output parses into a data class`() {
        val capital = capitals.capitalOf("France")
        assertThat(capital.country).isNotBlank()
        assertThat(capital.capital).containsIgnoringCase("paris")
    }

    @Test
    fun `the weather question calls the tool with Seoul and answers from its result`() {
        val before = weather.lookups.size
        val answer = assistant.chat("weather", "서울 날씨 어때?")
        val lookups = weather.lookups.drop(before)
        assertThat(lookups).isNotEmpty()
        assertThat(lookups).allSatisfy { assertThat(it.trim().lowercase()).isIn("seoul", "서울") }
        val memory = conversations.get("weather").messages()
        val results = memory.filterIsInstance<ToolExecutionResultMessage>()
        assertThat(results).isNotEmpty()
        assertThat(results.first().text()).contains("18°C")
        assertThat(memory.filterIsInstance<AiMessage>().first().hasToolExecutionRequests()).isTrue()
        assertThat(memory.size).isLessThanOrEqualTo(Conversations.MAX_MESSAGES)
        // The answer uses the tool's data (18°C), which the model could not know otherwise.
        assertThat(answer).contains("18")
    }

    @Test
    fun `the lunch question is answered without a tool call`() {
        val before = weather.lookups.size
        val answer = assistant.chat("lunch", "오늘 점심 뭐 먹지?")
        assertThat(weather.lookups.drop(before)).isEmpty()
        assertThat(answer).isNotBlank()
        val memory = conversations.get("lunch").messages()
        assertThat(memory.filterIsInstance<ToolExecutionResultMessage>()).isEmpty()
        assertThat(memory.filterIsInstance<AiMessage>()).noneMatch { it.hasToolExecutionRequests() }
    }

    companion object {
        /** Fails at once, with what to do, when no server answers at `TUNEUP_BASE_URL`. */
        @JvmStatic
        @BeforeAll
        fun serverIsUp() {
            val base = System.getenv("TUNEUP_BASE_URL") ?: "http://127.0.0.1:8080/v1"
            val models = URI.create(base.trimEnd('/') + "/models")
            val status = try {
                HttpClient.newHttpClient()
                    .send(HttpRequest.newBuilder(models).GET().build(), HttpResponse.BodyHandlers.discarding())
                    .statusCode()
            } catch (e: Exception) {
                throw AssertionError(
                    "no tuneup server at $base ($e): start `tuneup serve -m qwen2.5-coder-0.5b` and set " +
                        "TUNEUP_BASE_URL, or run scripts/test-langchain4j.sh",
                    e,
                )
            }
            // 401 means a key is required: the tests then send TUNEUP_API_KEY.
            assertThat(status).describedAs("GET $models").isIn(200, 401)
        }
    }
}
