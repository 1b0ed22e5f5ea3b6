package main

import (
	"context"
	"fmt"
	"time"

	"github.com/fusillade/fusillade"
	"github.com/fusillade/fusillade/deploy/samtemplate"
	"github.com/fusillade/fusillade/local/mockupstream"
)

// P8: what a batch costs on AWS. One batch runs end to end through the local stack against a
// slow upstream (5 s per request, the regime where Lambda duration dominates), while the bench
// counts every function invocation and its wall time (stack.Options.Invoked) and every SQS call
// the emulator receives (fakesqs.Server.Requests). The counts are priced at AWS list prices
// (cost.go) with each function's MemorySize from template.yaml, per million batch requests, and
// the worker's GB-s are set beside its physical floor.
//
// What the local stack cannot show as AWS would: its event source pollers long-poll for 2 s
// (Lambda's for up to 20 s) with one poller per invocation slot, so the empty receives are the
// local stack's, not AWS's; dispatch and purge run every minute whatever the load, so their share
// per million requests depends on the traffic rather than on the batch; cold starts, S3
// requests, CloudWatch and the database are not counted.
const (
	p8Limit   = 64
	p8Latency = 5 * time.Second
	// p8Baseline is the total $ per million requests P8 printed in quick mode on main before the
	// engine redesign: the median of seven runs, which ranged from $7.38 to $15.37 (docs/
	// benchmarks.md, "P8 AWS cost (quick), before the engine redesign"). The redesign's target
	// is at most half of it.
	p8Baseline = 10.14
)

func runP8(ctx context.Context, env *benchEnv) *Result {
	res := newResult("P8", "AWS cost per million requests, 5 s upstream")
	env.run(res, func() error { return p8(ctx, env, res, env.size(5_000, 500)) })
	return res
}

func p8(ctx context.Context, env *benchEnv, res *Result, n int) error {
	tpl, err := samtemplate.Parse(fusillade.Template)
	if err != nil {
		return fmt.Errorf("template.yaml: %w", err)
	}
	memory, err := samtemplate.MemorySizes(tpl)
	if err != nil {
		return fmt.Errorf("template.yaml: %w", err)
	}
	dep, err := samtemplate.ReadSettings(tpl)
	if err != nil {
		return fmt.Errorf("template.yaml: %w", err)
	}
	// Each SQS record is one request, so an invocation holds at most the event's BatchSize
	// requests at once: the slots the floor assumes are all busy. A design whose invocation
	// holds more (a slot loop per model) is held to the second floor, the model's whole limit in
	// one invocation.
	slots := dep.SQSEvents[workerFunction].BatchSize
	models := []modelSpec{{"bench-a", p8Limit}}
	dbURL, drop, err := env.pg.fresh(ctx, "p8")
	if err != nil {
		return err
	}
	defer drop()
	meter := newInvocationMeter()
	h, err := startHarness(ctx, harnessOptions{DatabaseURL: dbURL, Models: models, Invoked: meter.observe,
		Upstream: mockupstream.Config{Latency: mockupstream.Fixed(p8Latency), Record: true, RecordLimit: n + 1000, Seed: 1}, Log: env.log, Metrics: env.metrics})
	if err != nil {
		return err
	}
	defer h.Stop()
	content := genJSONL(n, []string{"bench-a"}, 0)
	sqsServer := h.SQS
	// The window opens before the upload and closes once the stack has stopped, so that every
	// invocation the batch caused has returned and been counted. The stack's start-up (queue
	// creation) is outside it; the schedules' first runs race the upload and may fall inside.
	fns0, sqs0 := meter.snapshot(), sqsServer.Requests()
	run, err := runBatch(ctx, h, content, 100*time.Millisecond)
	if err != nil {
		return err
	}
	if got := run.Batch.RequestCounts.Completed; got != n {
		return fmt.Errorf("batch completed %d of %d requests (%d failed)", got, n, run.Batch.RequestCounts.Failed)
	}
	up := upstreamUsage(h.Upstream.Requests(), h.Upstream.Stats(), models, p8Latency)[0]
	res.Knobs = h.Knobs
	h.Stop()
	in := costInput{Requests: n, Functions: subCounters(meter.snapshot(), fns0), MemoryMB: memory,
		SQS: subRequests(sqsServer.Requests(), sqs0), Latency: p8Latency, SlotsPerInvocation: slots,
		LimitSlots: p8Limit}
	cost, err := costs(in, listPrices)
	if err != nil {
		return err
	}
	cost = cost.rounded()
	res.Cost = &cost
	res.Knobs["lines"] = n
	res.Knobs["limit"] = p8Limit
	res.Knobs["latency"] = fmt.Sprint(mockupstream.Fixed(p8Latency))
	res.Knobs["memory_mb"] = memory
	res.Knobs["worker_slots_per_invocation"] = slots
	res.Knobs["prices"] = listPrices
	res.Knobs["window"] = "just before the upload → the stack stopped after the batch completed"
	res.Knobs["counted"] = "Lambda: every invocation the local stack makes (API requests, SQS event sources, schedules), " +
		"wall time rounded up to 1 ms × MemorySize; SQS: every call the emulator received, in 64 KiB units, " +
		"idle long polls of the local pollers (2 s waits, one poller per invocation slot) included; " +
		"API Gateway: one HTTP API request per API invocation. Not counted: cold starts, S3, CloudWatch, the database, free tiers"
	res.Metrics = map[string]any{
		"end_to_end_s":                                   seconds(run.e2e()),
		"utilisation":                                    up.Utilisation,
		"max_in_flight":                                  up.MaxInFlight,
		"total_dollars_per_million":                      cost.TotalPerMillion,
		"lambda_dollars_per_million":                     cost.LambdaPerMillion,
		"sqs_dollars_per_million":                        cost.SQS.DollarsPerMillion,
		"sqs_without_empty_receives_dollars_per_million": cost.SQS.WithoutEmpty.DollarsPerMillion,
		"api_gateway_dollars_per_million":                cost.APIGateway.DollarsPerMillion,
		"lambda_invocations_per_request":                 cost.InvocationsPerRequest,
		"worker_gb_s_per_request":                        cost.WorkerGBsPerRequest,
		"worker_over_floor":                              cost.Floor.Ratio,
		"worker_over_floor_at_limit":                     cost.FloorAtLimit.Ratio,
		"cost":                                           cost,
	}
	res.target("total $/M ≤ ½ main's", fmt.Sprintf("≤ $%.2f (½ × $%.2f)", p8Baseline/2, p8Baseline),
		fmt.Sprintf("$%.4f (%.2f× main's)", cost.TotalPerMillion, cost.TotalPerMillion/p8Baseline), cost.TotalPerMillion <= p8Baseline/2)
	res.Summary = fmt.Sprintf("N=%d C=%d L=%s: $%.4f per million requests (Lambda $%.4f, SQS $%.4f, API Gateway $%.4f); %.3f invocations/request, worker %.4f GB-s/request = %.2f× floor; e2e %.1fs U=%.3f",
		n, p8Limit, p8Latency, cost.TotalPerMillion, cost.LambdaPerMillion, cost.SQS.DollarsPerMillion, cost.APIGateway.DollarsPerMillion,
		cost.InvocationsPerRequest, cost.WorkerGBsPerRequest, cost.Floor.Ratio, run.e2e().Seconds(), up.Utilisation)
	return nil
}
