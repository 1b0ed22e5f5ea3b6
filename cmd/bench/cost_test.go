package main

import (
	"testing"
	"time"

	"github.com/stretchr/testify/require"

	"github.com/fusillade/fusillade/local/fakesqs"
	"github.com/fusillade/fusillade/local/stack"
)

// The cost figures are the counters times the prices, per million batch requests; the worker's
// floor is N × latency ÷ slots × memory.
func TestCostsPriceTheCountersPerMillionRequests(t *testing.T) {
	round := awsPrices{LambdaGBSecond: 0.00001, LambdaPerMillionInvocations: 1, SQSPerMillionRequests: 1, APIGatewayPerMillion: 2}
	mem := map[string]int{apiFunction: 1024, populateFunction: 1024, dispatchFunction: 256, workerFunction: 512, purgeFunction: 256}
	type want struct {
		lambda, sqs, api, total       float64
		worker                        float64 // the worker's $/M
		invPerReq, workerGBs          float64
		sqsPerMillion, floorGBs, over float64
		sqsWithoutEmpty               float64 // $/M
		limitFloorGBs, overLimit      float64
	}
	for name, c := range map[string]struct {
		in     costInput
		prices awsPrices
		want   want
	}{
		"every function, round prices": {
			in: costInput{Requests: 1000, MemoryMB: mem, Latency: 5 * time.Second, SlotsPerInvocation: 10, LimitSlots: 64,
				Functions: map[string]fnCounters{
					workerFunction:   {Invocations: 100, Records: 1000, BilledMs: 500_000}, // 250 GB-s: $0.0025 + $0.0001
					apiFunction:      {Invocations: 4, BilledMs: 512},                      // 0.512 GB-s: $0.00000512 + $0.000004
					populateFunction: {Invocations: 1, Records: 1, BilledMs: 1000},         // 1 GB-s: $0.00001 + $0.000001
					dispatchFunction: {Invocations: 2, BilledMs: 4000},                     // 1 GB-s: $0.00001 + $0.000002
				},
				SQS: map[string]fakesqs.RequestCount{
					"ReceiveMessage":     {Calls: 1500, Billed: 1500, Empty: 1000},
					"SendMessageBatch":   {Calls: 100, Billed: 100},
					"DeleteMessageBatch": {Calls: 100, Billed: 100},
					"SendMessage":        {Calls: 1, Billed: 3}, // 129 KiB: three 64 KiB units
				}},
			prices: round,
			want: want{lambda: 2.63212, worker: 2.6, sqs: 1.703, api: 0.008, total: 4.34312, invPerReq: 0.107,
				workerGBs: 0.25, sqsPerMillion: 1_703_000, floorGBs: 250, over: 1, sqsWithoutEmpty: 0.703,
				limitFloorGBs: 39.0625, overLimit: 6.4}, // 1000 × 5 s ÷ 64 × 0.5 GB
		},
		"list prices, a million one-second requests one per invocation": {
			in: costInput{Requests: 1_000_000, MemoryMB: map[string]int{apiFunction: 1769, populateFunction: 1024,
				dispatchFunction: 256, workerFunction: 1024, purgeFunction: 256}, Latency: time.Second, SlotsPerInvocation: 10,
				Functions: map[string]fnCounters{workerFunction: {Invocations: 1_000_000, Records: 1_000_000, BilledMs: 1_000_000_000}},
				SQS:       map[string]fakesqs.RequestCount{"ReceiveMessage": {Calls: 1_000_000, Billed: 1_000_000}}},
			prices: listPrices,
			// 1,000,000 GB-s × $0.0000133334 + 1,000,000 invocations × $0.20/M; 1,000,000 SQS
			// requests × $0.40/M; the floor is a tenth of the GB-s.
			want: want{lambda: 13.5334, worker: 13.5334, sqs: 0.40, total: 13.9334, invPerReq: 1, workerGBs: 1,
				sqsPerMillion: 1_000_000, floorGBs: 100_000, over: 10, sqsWithoutEmpty: 0.40},
		},
	} {
		t.Run(name, func(t *testing.T) {
			got, err := costs(c.in, c.prices)
			require.NoError(t, err)
			const eps = 1e-9
			require.InDelta(t, c.want.lambda, got.LambdaPerMillion, eps, "Lambda $/M")
			require.InDelta(t, c.want.worker, got.Functions[3].DollarsPerMillion, eps, "worker $/M")
			require.Equal(t, workerFunction, got.Functions[3].Function)
			require.InDelta(t, c.want.sqs, got.SQS.DollarsPerMillion, eps, "SQS $/M")
			require.InDelta(t, c.want.sqsPerMillion, got.SQS.PerMillion, eps, "SQS requests per million")
			require.InDelta(t, c.want.sqsWithoutEmpty, got.SQS.WithoutEmpty.DollarsPerMillion, eps, "SQS $/M without empty receives")
			require.InDelta(t, c.want.api, got.APIGateway.DollarsPerMillion, eps, "API Gateway $/M")
			require.InDelta(t, c.want.total, got.TotalPerMillion, eps, "total $/M")
			require.InDelta(t, c.want.invPerReq, got.InvocationsPerRequest, eps, "invocations per request")
			require.InDelta(t, c.want.workerGBs, got.WorkerGBsPerRequest, eps, "worker GB-s per request")
			require.InDelta(t, c.want.floorGBs, got.Floor.GBs, eps, "floor GB-s")
			require.InDelta(t, c.want.over, got.Floor.Ratio, eps, "measured ÷ floor")
			if c.want.limitFloorGBs == 0 {
				require.Nil(t, got.FloorAtLimit)
				return
			}
			require.InDelta(t, c.want.limitFloorGBs, got.FloorAtLimit.GBs, eps, "floor at the model's limit")
			require.InDelta(t, c.want.overLimit, got.FloorAtLimit.Ratio, eps, "measured ÷ floor at the limit")
		})
	}
}

func TestCostsRefuseWhatTheyCannotPrice(t *testing.T) {
	mem := map[string]int{apiFunction: 1, populateFunction: 1, dispatchFunction: 1, workerFunction: 1, purgeFunction: 1}
	_, err := costs(costInput{Requests: 0, MemoryMB: mem, SlotsPerInvocation: 1}, listPrices)
	require.ErrorContains(t, err, "run of 0 requests")
	_, err = costs(costInput{Requests: 1, MemoryMB: map[string]int{}, SlotsPerInvocation: 1}, listPrices)
	require.ErrorContains(t, err, "no MemorySize for ApiFunction")
	_, err = costs(costInput{Requests: 1, MemoryMB: mem}, listPrices)
	require.ErrorContains(t, err, "0 slots per invocation")
}

// Lambda bills each invocation in whole milliseconds, rounded up, at least one.
func TestBilledDurationRoundsEachInvocationUpToAMillisecond(t *testing.T) {
	for d, want := range map[time.Duration]int64{0: 1, time.Nanosecond: 1, time.Millisecond: 1,
		time.Millisecond + time.Nanosecond: 2, 1500 * time.Microsecond: 2, 5*time.Second + 300*time.Microsecond: 5001} {
		require.Equal(t, want, billedMs(d), "%s", d)
	}
	m := newInvocationMeter()
	m.observe(stack.Invocation{Function: workerFunction, Records: 3, Duration: 1500 * time.Microsecond})
	before := m.snapshot()
	m.observe(stack.Invocation{Function: workerFunction, Records: 2, Duration: 2500 * time.Microsecond})
	m.observe(stack.Invocation{Function: apiFunction, Duration: time.Millisecond})
	require.Equal(t, map[string]fnCounters{workerFunction: {Invocations: 1, Records: 2, BilledMs: 3}, apiFunction: {Invocations: 1, BilledMs: 1}},
		subCounters(m.snapshot(), before), "a window is one snapshot minus another, each invocation rounded on its own")
}
