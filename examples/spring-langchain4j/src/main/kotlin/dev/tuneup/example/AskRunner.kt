package dev.tuneup.example

import org.springframework.boot.CommandLineRunner
import org.springframework.stereotype.Component

/** `mvn spring-boot:run -Dspring-boot.run.arguments="서울 날씨 어때?"`: asks the weather agent and prints the answer. */
@Component
class AskRunner(private val assistant: WeatherAssistant, private val weather: WeatherTool) : CommandLineRunner {
    override fun run(vararg args: String) {
        if (args.isEmpty()) return
        val answer = assistant.chat("cli", args.joinToString(" "))
        weather.lookups.forEach { println("→ getWeather($it)") }
        println(answer)
    }
}
