package dev.tuneup.example

import dev.langchain4j.memory.ChatMemory
import dev.langchain4j.memory.chat.ChatMemoryProvider
import dev.langchain4j.memory.chat.MessageWindowChatMemory
import org.springframework.stereotype.Component
import java.util.concurrent.ConcurrentHashMap

/** The memory of each conversation: a window of the last [MAX_MESSAGES] messages, kept in memory. */
@Component
class Conversations : ChatMemoryProvider {
    private val memories = ConcurrentHashMap<Any, ChatMemory>()

    /** The memory of conversation [memoryId], created empty on first use. */
    override fun get(memoryId: Any): ChatMemory =
        memories.computeIfAbsent(memoryId) {
            MessageWindowChatMemory.builder().id(it).maxMessages(MAX_MESSAGES).build()
        }

    companion object {
        /** Messages kept per conversation (as `MessageWindowChatMemory.withMaxMessages(10)`). */
        const val MAX_MESSAGES = 10
    }
}
