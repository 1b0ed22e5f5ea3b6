package batches_test

import (
	"context"
	"testing"

	"github.com/stretchr/testify/assert"
	"github.com/stretchr/testify/require"

	"github.com/fusillade/fusillade/shared/domain"
)

// A batch's coalescing: the extension field, else the metadata key, else nil (the store then
// takes the tenant's default).
func TestCreateResolvesCoalescingFromTheFieldThenTheMetadataKey(t *testing.T) {
	t.Parallel()
	yes, no := true, false
	cases := []struct {
		name  string
		field *bool
		meta  map[string]string
		want  *bool
	}{
		{"neither: the tenant's default", nil, nil, nil},
		{"the metadata key on", nil, map[string]string{domain.MetadataCoalesce: "true"}, &yes},
		{"the metadata key off", nil, map[string]string{domain.MetadataCoalesce: "false"}, &no},
		{"the field wins over the key", &no, map[string]string{domain.MetadataCoalesce: "true"}, &no},
		{"the field alone", &yes, nil, &yes},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			t.Parallel()
			f := newFake(t)
			stored := batchStore(f)
			f.SendPopulateFn = func(context.Context, string) error { return nil }
			in := validCreate()
			in.Coalesce, in.Metadata = c.field, c.meta
			got, err := newService(f).Create(context.Background(), in)
			require.NoError(t, err)
			assert.Equal(t, c.want, stored[got.Batch.ID].Coalesce)
		})
	}
}

func TestCreateRefusesAMetadataCoalesceValueThatIsNotABoolean(t *testing.T) {
	t.Parallel()
	f := newFake(t)
	batchStore(f)
	in := validCreate()
	in.Metadata = map[string]string{domain.MetadataCoalesce: "yes"}
	_, err := newService(f).Create(context.Background(), in)
	require.Equal(t, domain.EInvalid, domain.ErrorCode(err))
	require.ErrorContains(t, err, domain.MetadataCoalesce)
}
