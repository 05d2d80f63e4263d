module github.com/llmhttp/llmhttp

go 1.25.0
