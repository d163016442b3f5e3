package dev.tuneup.example

import dev.langchain4j.agent.tool.P
import dev.langchain4j.agent.tool.Tool
import org.springframework.stereotype.Component
import java.util.concurrent.CopyOnWriteArrayList

/**
 * The agent's tool: the current weather of a city, from a fixed table (an offline stand-in for a
 * weather API, the same data as `examples/agent/weather.toml`). Every lookup is recorded in [lookups].
 */
@Component
class WeatherTool {
    private val recorded = CopyOnWriteArrayList<String>()

    /** The cities this tool was asked about, in order. */
    val lookups: List<String> get() = recorded.toList()

    /** The weather in [city] (English or Korean name), or a sentence saying there is no data. */
    @Tool("Get the current weather for a city. The city name must be in English, e.g. Seoul.")
    fun getWeather(@P("City name in English, e.g. Seoul") city: String): String {
        recorded += city
        return WEATHER[city.trim().lowercase()] ?: "No weather data for $city."
    }

    private companion object {
        val SEOUL = "서울: 맑음, 기온 18°C, 습도 40%, 바람 7 km/h"
        val WEATHER = mapOf(
            "seoul" to SEOUL,
            "서울" to SEOUL,
            "busan" to "부산: 흐림, 기온 21°C, 습도 65%, 바람 15 km/h",
            "tokyo" to "도쿄: 비, 기온 20°C, 습도 80%, 바람 12 km/h",
        )
    }
}
