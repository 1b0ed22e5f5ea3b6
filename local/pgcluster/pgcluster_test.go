package pgcluster

import (
	"testing"

	"github.com/stretchr/testify/require"
)

func TestLastComplaintIsTheLogsLastFatalLineOrItsLastLine(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct{ name, log, want string }{
		{"fatal after noise", "LOG:  starting\nFATAL:  could not bind IPv4 address \"127.0.0.1\": Address in use\nLOG:  shut down\n",
			`FATAL:  could not bind IPv4 address "127.0.0.1": Address in use`},
		{"last of several", "ERROR:  first\nFATAL:  second\n", "FATAL:  second"},
		{"no complaint", "LOG:  a\nLOG:  b\n", "LOG:  b"},
		{"empty", "", ""},
	} {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			require.Equal(t, tc.want, lastComplaint(tc.log))
		})
	}
}
