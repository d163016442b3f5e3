package dev.tuneup.example

import dev.langchain4j.service.UserMessage
import dev.langchain4j.service.V

/** A country's capital, as structured output. */
data class Capital(val country: String = "", val capital: String = "")

/**
 * Structured output: LangChain4j sends [Capital]'s JSON schema as `response_format` (json_schema), and
 * `tuneup serve` constrains decoding to it, so the answer always parses.
 */
interface CapitalFinder {
    /** The capital of [country]. */
    @UserMessage("What is the capital of {{country}}?")
    fun capitalOf(@V("country") country: String): Capital
}
