package dev.tuneup.example

import org.springframework.boot.autoconfigure.SpringBootApplication
import org.springframework.boot.context.properties.ConfigurationPropertiesScan
import org.springframework.boot.runApplication

/** A Spring Boot application whose LangChain4j models talk to `tuneup serve` (see [ModelConfig]). */
@SpringBootApplication
@ConfigurationPropertiesScan
class TuneupApplication

fun main(args: Array<String>) {
    runApplication<TuneupApplication>(*args)
}
