package dev.tuneup.example

import dev.langchain4j.model.chat.Capability
import dev.langchain4j.model.openai.OpenAiChatModel
import dev.langchain4j.model.openai.OpenAiStreamingChatModel
import dev.langchain4j.service.AiServices
import org.springframework.context.annotation.Bean
import org.springframework.context.annotation.Configuration

/** LangChain4j's OpenAI models pointed at `tuneup serve`, and the AI services built on them. */
@Configuration
class ModelConfig(private val tuneup: TuneupProperties) {
    /** Blocking chat; greedy, and structured output through `response_format` json_schema. */
    @Bean
    fun chatModel(): OpenAiChatModel =
        OpenAiChatModel.builder()
            .baseUrl(tuneup.baseUrl)
            .apiKey(tuneup.apiKey)
            .modelName(tuneup.model)
            .temperature(0.0)
            .maxTokens(MAX_TOKENS)
            .timeout(tuneup.timeout)
            .logRequests(tuneup.logHttp)
            .logResponses(tuneup.logHttp)
            .maxRetries(0)
            .supportedCapabilities(Capability.RESPONSE_FORMAT_JSON_SCHEMA)
            .strictJsonSchema(true)
            .build()

    /** Streaming chat (server-sent events). */
    @Bean
    fun streamingChatModel(): OpenAiStreamingChatModel =
        OpenAiStreamingChatModel.builder()
            .baseUrl(tuneup.baseUrl)
            .apiKey(tuneup.apiKey)
            .modelName(tuneup.model)
            .temperature(0.0)
            .maxTokens(MAX_TOKENS)
            .timeout(tuneup.timeout)
            .logRequests(tuneup.logHttp)
            .logResponses(tuneup.logHttp)
            .build()

    /**
     * The weather agent: [WeatherTool], a 10-message memory per conversation, and [AnswerFromToolResults]
     * so that a small model answers from the tool's result instead of calling the tool again.
     */
    @Bean
    fun weatherAssistant(chatModel: OpenAiChatModel, weather: WeatherTool, conversations: Conversations): WeatherAssistant =
        AiServices.builder(WeatherAssistant::class.java)
            .chatModel(chatModel)
            .tools(weather)
            .chatMemoryProvider(conversations)
            .chatRequestTransformer(AnswerFromToolResults)
            .maxToolCallingRoundTrips(MAX_TOOL_ROUND_TRIPS)
            .build()

    /** Structured output into [Capital]. */
    @Bean
    fun capitalFinder(chatModel: OpenAiChatModel): CapitalFinder =
        AiServices.builder(CapitalFinder::class.java).chatModel(chatModel).build()

    private companion object {
        const val MAX_TOKENS = 256
        const val MAX_TOOL_ROUND_TRIPS = 5
    }
}
