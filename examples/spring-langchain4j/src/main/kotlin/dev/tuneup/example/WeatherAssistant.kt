package dev.tuneup.example

import dev.langchain4j.service.MemoryId
import dev.langchain4j.service.SystemMessage
import dev.langchain4j.service.UserMessage

/**
 * The seed's agent as a LangChain4j AI service: it answers in Korean and calls [WeatherTool] when a
 * question needs the weather. Each conversation id has its own memory of the last 10 messages.
 */
interface WeatherAssistant {
    /** Answers [question] in conversation [conversationId], calling tools as needed. */
    @SystemMessage(
        "You are a helpful assistant. Answer in Korean. Use a tool only when the question needs data it provides. " +
            "After a tool result, answer the question with it.",
    )
    fun chat(@MemoryId conversationId: String, @UserMessage question: String): String
}
