// Package sdktest holds tests that run llmhttp beneath the official Anthropic
// and OpenAI Go SDKs. It is a separate module so that the SDKs never become
// dependencies of github.com/llmhttp/llmhttp.
package sdktest
