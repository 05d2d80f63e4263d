module github.com/llmhttp/llmhttp/examples

go 1.25.0

require github.com/llmhttp/llmhttp v0.0.0-00010101000000-000000000000

replace github.com/llmhttp/llmhttp => ../
