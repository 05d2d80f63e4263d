// Command langchaingo runs llmhttp beneath github.com/tmc/langchaingo's
// OpenAI and Anthropic models, through their WithHTTPClient options: one
// llmhttp transport shared by both, a completion and a streamed one each.
//
// langchaingo has no retry loop of its own, so there is nothing to turn off.
// Its default client is http.DefaultClient, without timeouts; the one below
// keeps the official SDKs' 10-minute ResponseHeaderTimeout.
//
// Each provider whose key is set (ANTHROPIC_API_KEY, OPENAI_API_KEY) is
// called for real (small requests to Claude Haiku and gpt-4.1-mini); the
// others go to llmhttptest's fake API on a loopback port, whose first answer
// is an overload error, so that you can watch llmhttp retry it.
//
//	go run ./examples/langchaingo
package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"time"

	"github.com/tmc/langchaingo/llms"
	"github.com/tmc/langchaingo/llms/anthropic"
	"github.com/tmc/langchaingo/llms/openai"

	"github.com/llmhttp/llmhttp"
	"github.com/llmhttp/llmhttp/examples/internal/demo"
	"github.com/llmhttp/llmhttp/llmhttptest"
)

func main() {
	fake := &demo.Fake{Name: "API", Config: fakeConfig()}
	cfg := config{AnthropicModel: "claude-haiku-4-5", OpenAIModel: "gpt-4.1-mini"}
	cfg.AnthropicKey, cfg.AnthropicURL = fake.Key("ANTHROPIC_API_KEY", "sk-ant-fake", "/v1")
	cfg.OpenAIKey, cfg.OpenAIURL = fake.Key("OPENAI_API_KEY", "sk-fake", "/v1")
	demo.Main("langchaingo", fake, func(ctx context.Context, w io.Writer) error { return run(ctx, w, cfg) })
}

// fakeConfig is the fake API of the demo: Tier 1 limits, short replies, and
// an overload error (Retry-After: 1) for the first request.
func fakeConfig() llmhttptest.Config { return demo.FakeConfig(llmhttptest.Overloaded) }

// config is what run needs. An empty URL means the provider's real API.
type config struct {
	AnthropicKey, AnthropicURL, AnthropicModel string
	OpenAIKey, OpenAIURL, OpenAIModel          string
	// Base is the transport beneath llmhttp; nil means a clone of
	// http.DefaultTransport with a ResponseHeaderTimeout (tests put
	// llmhttptest's in-memory transport here).
	Base http.RoundTripper
}

func run(ctx context.Context, w io.Writer, cfg config) error {
	// One llmhttp transport for every client of the program: it keeps
	// separate pacing state per host, key and model. The hook only prints
	// what llmhttp does; New(base) alone is enough.
	hc := &http.Client{Transport: llmhttp.New(demo.Transport(cfg.Base),
		llmhttp.WithRetryPolicy(llmhttp.RetryPolicy{OnRetry: func(e llmhttp.RetryEvent) {
			fmt.Fprintf(w, "  llmhttp: attempt %d got %d %s; retrying in %v\n",
				e.Attempt, e.Status, e.Class, e.Delay.Round(time.Millisecond))
		}}),
	)}

	claudeOpts := []anthropic.Option{
		anthropic.WithToken(cfg.AnthropicKey), anthropic.WithModel(cfg.AnthropicModel), anthropic.WithHTTPClient(hc),
	}
	if cfg.AnthropicURL != "" {
		claudeOpts = append(claudeOpts, anthropic.WithBaseURL(cfg.AnthropicURL))
	}
	claude, err := anthropic.New(claudeOpts...)
	if err != nil {
		return err
	}

	gptOpts := []openai.Option{
		openai.WithToken(cfg.OpenAIKey), openai.WithModel(cfg.OpenAIModel), openai.WithHTTPClient(hc),
	}
	if cfg.OpenAIURL != "" {
		gptOpts = append(gptOpts, openai.WithBaseURL(cfg.OpenAIURL))
	}
	gpt, err := openai.New(gptOpts...)
	if err != nil {
		return err
	}

	prompt := []llms.MessageContent{
		llms.TextParts(llms.ChatMessageTypeHuman, "In one sentence: why pace requests to an LLM API?"),
	}
	for _, m := range []struct {
		name string
		llm  llms.Model
	}{{"anthropic", claude}, {"openai", gpt}} {
		fmt.Fprintf(w, "%s GenerateContent:\n", m.name)
		resp, err := m.llm.GenerateContent(ctx, prompt, llms.WithMaxTokens(64))
		if err != nil {
			return fmt.Errorf("%s: %w", m.name, err)
		}
		if len(resp.Choices) == 0 {
			return fmt.Errorf("%s: no choice in the response", m.name)
		}
		fmt.Fprintf(w, "  %s\n", resp.Choices[0].Content)

		// Streaming: llmhttp retries only before the response head
		// arrives; once the stream has begun it is the caller's.
		fmt.Fprintf(w, "%s GenerateContent, streamed:\n  ", m.name)
		chunks := 0
		_, err = m.llm.GenerateContent(ctx, prompt, llms.WithMaxTokens(64),
			llms.WithStreamingFunc(func(_ context.Context, chunk []byte) error {
				chunks++
				_, err := w.Write(chunk)
				return err
			}))
		if err != nil {
			return fmt.Errorf("%s, streamed: %w", m.name, err)
		}
		if chunks == 0 {
			return errors.New(m.name + ": the stream delivered nothing")
		}
		fmt.Fprintf(w, "\n  (%d chunks)\n\n", chunks)
	}
	return nil
}
