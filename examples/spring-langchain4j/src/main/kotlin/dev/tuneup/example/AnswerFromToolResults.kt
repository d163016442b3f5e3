package dev.tuneup.example

import dev.langchain4j.data.message.AiMessage
import dev.langchain4j.data.message.ChatMessage
import dev.langchain4j.data.message.ToolExecutionResultMessage
import dev.langchain4j.data.message.UserMessage
import dev.langchain4j.model.chat.request.ChatRequest
import dev.langchain4j.model.chat.request.ChatRequestParameters
import java.util.function.UnaryOperator

/**
 * A request transformer for small models: once the tools have answered, the model is asked for the answer
 * with the question and the tool results in one user message, and without tools.
 *
 * Qwen2.5-Coder-0.5B, given the usual OpenAI history (the call, then a `tool` message with its result),
 * repeats the same call instead of answering, and LangChain4j would run the tool again until
 * `maxToolCallingRoundTrips`. `tuneup agent` rephrases the turn the same way (crates/agent). Only the request
 * changes: the chat memory keeps the real messages (the call, the result and the answer). With a larger
 * model, leave this transformer out.
 */
object AnswerFromToolResults : UnaryOperator<ChatRequest> {
    override fun apply(request: ChatRequest): ChatRequest {
        val messages = request.messages()
        if (messages.lastOrNull() !is ToolExecutionResultMessage) return request
        val start = messages.indexOfLast { it is UserMessage && it.hasSingleText() }
        if (start < 0) return request
        val turn = messages.subList(start, messages.size)
        val prompt = UserMessage.from(resultsPrompt((turn.first() as UserMessage).singleText(), turn))
        val withoutTools = ChatRequestParameters.builder()
            .overrideWith(request.parameters())
            .toolSpecifications(emptyList())
            .toolChoice(null)
            .build()
        return ChatRequest.builder()
            .messages(messages.subList(0, start) + prompt)
            .parameters(withoutTools)
            .build()
    }

    /** "Question: …", each call with what it returned, then the request to answer ("Question:" first and
     * "do not repeat" last: otherwise small models tend to echo the question). */
    private fun resultsPrompt(question: String, turn: List<ChatMessage>): String {
        val calls = turn.filterIsInstance<AiMessage>()
            .flatMap { it.toolExecutionRequests() }
            .associateBy { it.id() }
        val results = turn.filterIsInstance<ToolExecutionResultMessage>().joinToString("\n") { result ->
            val arguments = calls[result.id()]?.arguments() ?: "{}"
            "${result.toolName()}($arguments) returned: ${result.text()}"
        }
        return "Question: $question\n\nTool results:\n$results\n\n" +
            "Using these results, write the answer to the question (do not repeat the question)."
    }
}
