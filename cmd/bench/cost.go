package main

import (
	"fmt"
	"io"
	"maps"
	"math"
	"slices"
	"sync"
	"time"

	"github.com/fusillade/fusillade/local/fakesqs"
	"github.com/fusillade/fusillade/local/stack"
)

// AWS list prices in dollars, us-east-1, arm64, as listed on the AWS pricing pages in 2026
// (recorded 2026-12-02). They are list prices of the first tier with every free tier ignored
// (Lambda's 400,000 GB-s and 1 million requests a month, SQS's first million requests a month);
// check them against the pricing pages when AWS changes them, and say so beside any figure
// quoted from an older run.
const (
	pricesRecorded = "2026-12-02, us-east-1, arm64; AWS list prices, free tiers ignored"
	// lambdaPerGBSecond is Lambda duration on arm64, $ per GB-s (first 7.5 billion GB-s a month).
	lambdaPerGBSecond = 0.0000133334
	// lambdaPerMillionInvocations is Lambda requests, $ per million invocations.
	lambdaPerMillionInvocations = 0.20
	// sqsPerMillionRequests is SQS standard queues, $ per million requests (each call of up to
	// 64 KiB is one request) after the free tier.
	sqsPerMillionRequests = 0.40
	// apiGatewayPerMillionRequests is API Gateway HTTP APIs, $ per million requests (first 300
	// million a month; each 512 KB of a request is metered as one).
	apiGatewayPerMillionRequests = 1.00
)

// awsPrices are what the cost figures multiply the counters by.
type awsPrices struct {
	LambdaGBSecond              float64 `json:"lambda_per_gb_s"`
	LambdaPerMillionInvocations float64 `json:"lambda_per_million_invocations"`
	SQSPerMillionRequests       float64 `json:"sqs_per_million_requests"`
	APIGatewayPerMillion        float64 `json:"api_gateway_http_per_million_requests"`
	Recorded                    string  `json:"recorded"`
}

var listPrices = awsPrices{LambdaGBSecond: lambdaPerGBSecond, LambdaPerMillionInvocations: lambdaPerMillionInvocations,
	SQSPerMillionRequests: sqsPerMillionRequests, APIGatewayPerMillion: apiGatewayPerMillionRequests, Recorded: pricesRecorded}

// The functions priced, by template.yaml logical id, in the order they are printed.
const (
	apiFunction      = "ApiFunction"
	populateFunction = "PopulateFunction"
	dispatchFunction = "DispatchFunction"
	workerFunction   = "WorkerFunction"
	purgeFunction    = "PurgeFunction"
)

var pricedFunctions = []string{apiFunction, populateFunction, dispatchFunction, workerFunction, purgeFunction}

// fnCounters are one function's invocations as the bench counted them.
type fnCounters struct {
	Invocations int64
	Records     int64 // SQS records handed to it
	BilledMs    int64 // Σ each invocation's wall time rounded up to 1 ms
}

// billedMs is one invocation's billed duration: Lambda bills in 1 ms steps, rounded up, at least
// one.
func billedMs(d time.Duration) int64 {
	return max(1, int64((d+time.Millisecond-1)/time.Millisecond))
}

// invocationMeter counts stack.Invocations per function (stack.Options.Invoked).
type invocationMeter struct {
	mu sync.Mutex
	by map[string]fnCounters
}

func newInvocationMeter() *invocationMeter { return &invocationMeter{by: map[string]fnCounters{}} }

func (m *invocationMeter) observe(inv stack.Invocation) {
	m.mu.Lock()
	defer m.mu.Unlock()
	c := m.by[inv.Function]
	c.Invocations++
	c.Records += int64(inv.Records)
	c.BilledMs += billedMs(inv.Duration)
	m.by[inv.Function] = c
}

// snapshot returns the counts so far; a window is one snapshot minus another.
func (m *invocationMeter) snapshot() map[string]fnCounters {
	m.mu.Lock()
	defer m.mu.Unlock()
	return maps.Clone(m.by)
}

func subCounters(a, b map[string]fnCounters) map[string]fnCounters {
	out := map[string]fnCounters{}
	for k, v := range a {
		w := b[k]
		out[k] = fnCounters{Invocations: v.Invocations - w.Invocations, Records: v.Records - w.Records, BilledMs: v.BilledMs - w.BilledMs}
	}
	return out
}

func subRequests(a, b map[string]fakesqs.RequestCount) map[string]fakesqs.RequestCount {
	out := map[string]fakesqs.RequestCount{}
	for k, v := range a {
		w := b[k]
		if d := (fakesqs.RequestCount{Calls: v.Calls - w.Calls, Billed: v.Billed - w.Billed, Empty: v.Empty - w.Empty}); d.Calls > 0 {
			out[k] = d
		}
	}
	return out
}

// costInput is what one run counted.
type costInput struct {
	Requests  int                             // batch requests (input lines) the run completed
	Functions map[string]fnCounters           // by logical id
	MemoryMB  map[string]int                  // template.yaml MemorySize, by logical id
	SQS       map[string]fakesqs.RequestCount // by action, as the emulator saw them
	// The physical floor of the worker: every invocation holding SlotsPerInvocation requests of
	// Latency each, all the time. LimitSlots is the model's concurrency limit: the floor of a
	// design whose one invocation could hold every slot of the model (0: not computed).
	Latency            time.Duration
	SlotsPerInvocation int
	LimitSlots         int
}

// CostReport is a run's AWS cost per million batch requests, from its own counters.
type CostReport struct {
	Prices    awsPrices      `json:"prices"`
	Requests  int            `json:"requests"`
	Functions []FunctionCost `json:"functions"`
	SQS       SQSCost        `json:"sqs"`
	// APIGateway prices every API invocation as one HTTP API request.
	APIGateway            RequestCost `json:"api_gateway"`
	LambdaPerMillion      float64     `json:"lambda_dollars_per_million"`
	TotalPerMillion       float64     `json:"total_dollars_per_million"`
	InvocationsPerRequest float64     `json:"lambda_invocations_per_request"`
	WorkerGBsPerRequest   float64     `json:"worker_gb_s_per_request"`
	Floor                 WorkerFloor `json:"worker_floor"`
	// FloorAtLimit is the same floor with the model's whole limit in one invocation.
	FloorAtLimit *WorkerFloor `json:"worker_floor_at_limit,omitempty"`
}

// FunctionCost is one function's share.
type FunctionCost struct {
	Function    string  `json:"function"`
	MemoryMB    int     `json:"memory_mb"`
	Invocations int64   `json:"invocations"`
	Records     int64   `json:"records"`
	BilledS     float64 `json:"billed_s"`
	GBs         float64 `json:"gb_s"`
	// DollarsPerMillion is duration and invocations, per million batch requests.
	DollarsPerMillion float64 `json:"dollars_per_million"`
}

// SQSCost is the run's SQS calls.
type SQSCost struct {
	ByAction      map[string]fakesqs.RequestCount `json:"by_action"`
	Billed        int64                           `json:"billed_requests"`
	EmptyReceives int64                           `json:"empty_receives"`
	RequestCost
	// WithoutEmpty leaves the empty receives out: they are the local pollers' idle long polls
	// (2 s each, one poller per invocation slot), which AWS's pollers make far fewer of.
	WithoutEmpty RequestCost `json:"without_empty_receives"`
}

// RequestCost is a count of billed requests scaled to a million batch requests, and its price.
type RequestCost struct {
	PerMillion        float64 `json:"requests_per_million"`
	DollarsPerMillion float64 `json:"dollars_per_million"`
}

// WorkerFloor is the least worker GB-s the run's requests could take: each invocation holding
// all its slots busy for the whole of its life, N × latency ÷ slots × memory.
type WorkerFloor struct {
	SlotsPerInvocation int     `json:"slots_per_invocation"`
	LatencyS           float64 `json:"latency_s"`
	GBs                float64 `json:"gb_s"`
	// Ratio is the measured worker GB-s ÷ the floor's (1 is the physical limit).
	Ratio float64 `json:"measured_over_floor"`
}

// gb is a MemorySize in GB as Lambda bills it (1,024 MB to the GB).
func gb(mb int) float64 { return float64(mb) / 1024 }

// costs prices in's counters at p, per million batch requests.
func costs(in costInput, p awsPrices) (CostReport, error) {
	if in.Requests <= 0 {
		return CostReport{}, fmt.Errorf("cost per request of a run of %d requests", in.Requests)
	}
	perMillion := 1e6 / float64(in.Requests)
	rep := CostReport{Prices: p, Requests: in.Requests}
	var invocations int64
	for _, fn := range pricedFunctions {
		mb, ok := in.MemoryMB[fn]
		if !ok {
			return CostReport{}, fmt.Errorf("no MemorySize for %s", fn)
		}
		c := in.Functions[fn]
		gbs := float64(c.BilledMs) / 1000 * gb(mb)
		dollars := gbs*p.LambdaGBSecond + float64(c.Invocations)*p.LambdaPerMillionInvocations/1e6
		rep.Functions = append(rep.Functions, FunctionCost{Function: fn, MemoryMB: mb, Invocations: c.Invocations,
			Records: c.Records, BilledS: float64(c.BilledMs) / 1000, GBs: gbs, DollarsPerMillion: dollars * perMillion})
		rep.LambdaPerMillion += dollars * perMillion
		invocations += c.Invocations
		if fn == workerFunction {
			rep.WorkerGBsPerRequest = gbs / float64(in.Requests)
		}
	}
	rep.SQS.ByAction = in.SQS
	for _, c := range in.SQS {
		rep.SQS.Billed += c.Billed
		rep.SQS.EmptyReceives += c.Empty
	}
	rep.SQS.PerMillion = float64(rep.SQS.Billed) * perMillion
	rep.SQS.DollarsPerMillion = rep.SQS.PerMillion * p.SQSPerMillionRequests / 1e6
	rep.SQS.WithoutEmpty.PerMillion = float64(rep.SQS.Billed-rep.SQS.EmptyReceives) * perMillion
	rep.SQS.WithoutEmpty.DollarsPerMillion = rep.SQS.WithoutEmpty.PerMillion * p.SQSPerMillionRequests / 1e6
	api := in.Functions[apiFunction].Invocations
	rep.APIGateway.PerMillion = float64(api) * perMillion
	rep.APIGateway.DollarsPerMillion = rep.APIGateway.PerMillion * p.APIGatewayPerMillion / 1e6
	rep.TotalPerMillion = rep.LambdaPerMillion + rep.SQS.DollarsPerMillion + rep.APIGateway.DollarsPerMillion
	rep.InvocationsPerRequest = float64(invocations) / float64(in.Requests)
	if in.SlotsPerInvocation <= 0 {
		return CostReport{}, fmt.Errorf("worker floor with %d slots per invocation", in.SlotsPerInvocation)
	}
	workerGBs := rep.Functions[slices.Index(pricedFunctions, workerFunction)].GBs
	floor := func(slots int) WorkerFloor {
		f := WorkerFloor{SlotsPerInvocation: slots, LatencyS: in.Latency.Seconds(),
			GBs: float64(in.Requests) * in.Latency.Seconds() / float64(slots) * gb(in.MemoryMB[workerFunction])}
		if f.GBs > 0 {
			f.Ratio = workerGBs / f.GBs
		}
		return f
	}
	rep.Floor = floor(in.SlotsPerInvocation)
	if in.LimitSlots > 0 {
		f := floor(in.LimitSlots)
		rep.FloorAtLimit = &f
	}
	return rep, nil
}

// rounded returns r with every figure rounded for the JSON report.
func (r CostReport) rounded() CostReport {
	r6 := func(x float64) float64 { return math.Round(x*1e6) / 1e6 }
	out := r
	out.Functions = make([]FunctionCost, len(r.Functions))
	for i, f := range r.Functions {
		f.BilledS, f.GBs, f.DollarsPerMillion = round3(f.BilledS), round3(f.GBs), r6(f.DollarsPerMillion)
		out.Functions[i] = f
	}
	out.SQS.PerMillion, out.SQS.DollarsPerMillion = round3(r.SQS.PerMillion), r6(r.SQS.DollarsPerMillion)
	out.SQS.WithoutEmpty.PerMillion = round3(r.SQS.WithoutEmpty.PerMillion)
	out.SQS.WithoutEmpty.DollarsPerMillion = r6(r.SQS.WithoutEmpty.DollarsPerMillion)
	out.APIGateway.PerMillion, out.APIGateway.DollarsPerMillion = round3(r.APIGateway.PerMillion), r6(r.APIGateway.DollarsPerMillion)
	out.LambdaPerMillion, out.TotalPerMillion = r6(r.LambdaPerMillion), r6(r.TotalPerMillion)
	out.InvocationsPerRequest, out.WorkerGBsPerRequest = r6(r.InvocationsPerRequest), r6(r.WorkerGBsPerRequest)
	out.Floor.GBs, out.Floor.Ratio = round3(r.Floor.GBs), round3(r.Floor.Ratio)
	if r.FloorAtLimit != nil {
		f := *r.FloorAtLimit
		f.GBs, f.Ratio = round3(f.GBs), round3(f.Ratio)
		out.FloorAtLimit = &f
	}
	return out
}

// print writes the cost table: per function, SQS, API Gateway, the total and the worker's floor.
func (r CostReport) print(w io.Writer, id string) {
	fmt.Fprintf(w, "\n%s AWS cost per million batch requests (%d requests counted; prices %s)\n", id, r.Requests, r.Prices.Recorded)
	fmt.Fprintf(w, "%-18s %7s %12s %10s %12s %12s\n", "function", "MB", "invocations", "records", "GB-s", "$/M")
	for _, f := range r.Functions {
		fmt.Fprintf(w, "%-18s %7d %12d %10d %12.3f %12.4f\n", f.Function, f.MemoryMB, f.Invocations, f.Records, f.GBs, f.DollarsPerMillion)
	}
	fmt.Fprintf(w, "%-18s %7s %12s %10s %12s %12.4f\n", "Lambda", "", "", "", "", r.LambdaPerMillion)
	fmt.Fprintf(w, "%-18s %d billed requests, %.0f per million: $%.4f/M; without the %d empty receives of the local pollers %.0f per million: $%.4f/M\n",
		"SQS", r.SQS.Billed, r.SQS.PerMillion, r.SQS.DollarsPerMillion, r.SQS.EmptyReceives, r.SQS.WithoutEmpty.PerMillion,
		r.SQS.WithoutEmpty.DollarsPerMillion)
	for _, op := range slices.Sorted(maps.Keys(r.SQS.ByAction)) {
		c := r.SQS.ByAction[op]
		fmt.Fprintf(w, "%-18s   %-28s %8d calls %8d billed %8d empty\n", "", op, c.Calls, c.Billed, c.Empty)
	}
	fmt.Fprintf(w, "%-18s %.0f requests per million: $%.4f/M\n", "API Gateway HTTP", r.APIGateway.PerMillion, r.APIGateway.DollarsPerMillion)
	fmt.Fprintf(w, "%-18s $%.4f per million requests\n", "total", r.TotalPerMillion)
	fmt.Fprintf(w, "Lambda invocations per request %.4f; worker GB-s per request %.4f\n", r.InvocationsPerRequest, r.WorkerGBsPerRequest)
	worker := r.Functions[slices.Index(pricedFunctions, workerFunction)]
	fmt.Fprintf(w, "worker floor (N × %.0fs ÷ %d slots per invocation × %.3f GB): %.3f GB-s; measured %.3f GB-s = %.2f× the floor\n",
		r.Floor.LatencyS, r.Floor.SlotsPerInvocation, gb(worker.MemoryMB), r.Floor.GBs, worker.GBs, r.Floor.Ratio)
	if f := r.FloorAtLimit; f != nil {
		fmt.Fprintf(w, "worker floor with the model's whole limit in one invocation (%d slots): %.3f GB-s; measured = %.2f× it\n",
			f.SlotsPerInvocation, f.GBs, f.Ratio)
	}
}

// printCosts prints the cost table of every workload that priced itself.
func printCosts(w io.Writer, rep *Report) {
	for _, r := range rep.Workloads {
		if r.Cost != nil && r.Error == "" {
			r.Cost.print(w, r.ID)
		}
	}
}
