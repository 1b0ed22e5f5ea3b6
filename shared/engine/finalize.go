package engine

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"

	"github.com/fusillade/fusillade/shared/domain"
)

// TryFinalize seals the batch if every request is finished and nobody else is sealing it. The
// worker calls it after each terminal write, the API after a cancel. Failures are logged: the
// maintenance retries finalisations that did not complete.
func (e *Engine) TryFinalize(ctx context.Context, batchID string) {
	tenantID, ok, err := e.store.BeginFinalize(ctx, batchID, e.now())
	if err != nil {
		e.log.ErrorContext(ctx, "begin finalize", "batch_id", batchID, "err", err)
		return
	}
	if !ok {
		return
	}
	if err := e.seal(ctx, tenantID, batchID); err != nil {
		e.log.ErrorContext(ctx, "finalize", "batch_id", batchID, "err", err)
	}
}

// seal writes the batch's output and error files to S3 and completes the batch with frozen
// counts. Output lines come in input order. A batch whose every request failed still completes
// (OpenAI semantics) with no output file; one with no failure has no error file.
func (e *Engine) seal(ctx context.Context, tenantID, batchID string) error {
	now := e.now()
	var usage usageSum
	out, err := e.writeResults(ctx, tenantID, batchID, true, &usage)
	if err != nil {
		return err
	}
	errFile, err := e.writeResults(ctx, tenantID, batchID, false, nil)
	if err != nil {
		return err
	}
	var usageDoc []byte
	if usage.seen {
		usageDoc, _ = json.Marshal(usage.openAI())
	}
	if err := e.store.SealBatch(ctx, batchID, out, errFile, usageDoc, now); err != nil {
		return fmt.Errorf("seal %s: %w", batchID, err)
	}
	e.log.InfoContext(ctx, "batch completed", "batch_id", batchID)
	return nil
}

// writeResults streams one file from Postgres into S3. An empty file is not kept.
func (e *Engine) writeResults(ctx context.Context, tenantID, batchID string, output bool, usage *usageSum) (domain.Sealed, error) {
	key := domain.BatchFileKey(tenantID, batchID, output)
	pr, pw := io.Pipe()
	var sealed domain.Sealed
	go func() {
		buf := make([]byte, 0, 64<<10)
		flush := func() error {
			n, err := pw.Write(buf)
			sealed.Bytes += int64(n)
			buf = buf[:0]
			return err
		}
		err := e.store.EachResult(ctx, batchID, output, func(row domain.ResultRow) error {
			// A line that took another's upstream answer (coalesced, or from the result cache)
			// cost no tokens of its own: the tokens are counted once, with the line that ran.
			if usage != nil && !row.Shared {
				usage.add(row.Body)
			}
			buf = domain.AppendResultLine(buf, row)
			sealed.Lines++
			if len(buf) >= 48<<10 {
				return flush()
			}
			return nil
		})
		if err == nil && len(buf) > 0 {
			err = flush()
		}
		pw.CloseWithError(err)
	}()
	if err := e.blobs.Put(ctx, key, pr, "application/jsonl"); err != nil {
		pr.CloseWithError(err)
		return sealed, err
	}
	if sealed.Lines == 0 {
		// Nothing to keep: OpenAI reports no file id rather than an empty file.
		if err := e.blobs.Delete(ctx, key); err != nil {
			e.log.WarnContext(ctx, "delete empty result object", "key", key, "err", err)
		}
		return sealed, nil
	}
	sealed.Key = key
	return sealed, nil
}

// usageSum adds up the upstream "usage" of completed responses for the batch's usage field.
type usageSum struct {
	seen                 bool
	input, output, total int64
	cached, reasoning    int64
}

func (u *usageSum) add(body []byte) {
	if !bytes.Contains(body, []byte(`"usage"`)) {
		return
	}
	var doc struct {
		Usage *struct {
			PromptTokens        int64 `json:"prompt_tokens"`
			CompletionTokens    int64 `json:"completion_tokens"`
			InputTokens         int64 `json:"input_tokens"`
			OutputTokens        int64 `json:"output_tokens"`
			TotalTokens         int64 `json:"total_tokens"`
			PromptTokensDetails struct {
				CachedTokens int64 `json:"cached_tokens"`
			} `json:"prompt_tokens_details"`
			CompletionTokensDetails struct {
				ReasoningTokens int64 `json:"reasoning_tokens"`
			} `json:"completion_tokens_details"`
		} `json:"usage"`
	}
	if json.Unmarshal(body, &doc) != nil || doc.Usage == nil {
		return
	}
	x := doc.Usage
	u.seen = true
	u.input += x.PromptTokens + x.InputTokens
	u.output += x.CompletionTokens + x.OutputTokens
	u.total += x.TotalTokens
	u.cached += x.PromptTokensDetails.CachedTokens
	u.reasoning += x.CompletionTokensDetails.ReasoningTokens
}

func (u *usageSum) openAI() map[string]any {
	return map[string]any{
		"input_tokens":          u.input,
		"input_tokens_details":  map[string]int64{"cached_tokens": u.cached},
		"output_tokens":         u.output,
		"output_tokens_details": map[string]int64{"reasoning_tokens": u.reasoning},
		"total_tokens":          u.total,
	}
}
