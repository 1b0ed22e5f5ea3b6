// Package s3blob stores file contents in S3: uploaded input files, and sealed output and error
// files. Uploads stream through the SDK's multipart uploader, so a 200 MB file never sits in
// memory whole.
package s3blob

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/feature/s3/manager"
	"github.com/aws/aws-sdk-go-v2/service/s3"
	"github.com/aws/aws-sdk-go-v2/service/s3/types"

	"github.com/fusillade/fusillade/shared/domain"
)

// Store is safe for concurrent use.
type Store struct {
	client  *s3.Client
	presign *s3.PresignClient
	// The feature/s3/manager uploader is deprecated in favour of feature/s3/transfermanager; it
	// is kept until the local S3 emulator is checked against the new one's requests.
	uploader *manager.Uploader //nolint:staticcheck // see above
	bucket   string
}

// NewClient builds an S3 client; endpoint and pathStyle are for local emulators only.
func NewClient(cfg aws.Config, endpoint string, pathStyle bool) *s3.Client {
	return s3.NewFromConfig(cfg, func(o *s3.Options) {
		if endpoint != "" {
			o.BaseEndpoint = aws.String(endpoint)
		}
		o.UsePathStyle = pathStyle
	})
}

// New returns a store for bucket.
func New(client *s3.Client, bucket string) *Store {
	return &Store{
		client:  client,
		presign: s3.NewPresignClient(client),
		// 8 MiB parts, 2 in flight: bounded memory (16 MiB) per upload.
		uploader: manager.NewUploader(client, func(u *manager.Uploader) { //nolint:staticcheck // see Store.uploader
			u.PartSize = 8 << 20
			u.Concurrency = 2
		}),
		bucket: bucket,
	}
}

// Bucket returns the bucket name.
func (s *Store) Bucket() string { return s.bucket }

// EnsureBucket creates the bucket if it does not exist (local runs; on AWS the template does).
func (s *Store) EnsureBucket(ctx context.Context) error {
	if _, err := s.client.HeadBucket(ctx, &s3.HeadBucketInput{Bucket: &s.bucket}); err == nil {
		return nil
	}
	_, err := s.client.CreateBucket(ctx, &s3.CreateBucketInput{Bucket: &s.bucket})
	var owned *types.BucketAlreadyOwnedByYou
	if err != nil && !errors.As(err, &owned) {
		return fmt.Errorf("s3: create bucket %s: %w", s.bucket, err)
	}
	return nil
}

// Put streams r to key. The caller counts bytes if it needs them (it usually validates the same
// stream).
func (s *Store) Put(ctx context.Context, key string, r io.Reader, contentType string) error {
	_, err := s.uploader.Upload(ctx, &s3.PutObjectInput{Bucket: &s.bucket, Key: &key, Body: r, ContentType: &contentType}) //nolint:staticcheck // see Store.uploader
	if err != nil {
		return fmt.Errorf("s3: put %s: %w", key, err)
	}
	return nil
}

// Get opens key for reading; the caller closes the body. errors.Is(err, domain.ErrNoObject) when
// the key does not exist.
func (s *Store) Get(ctx context.Context, key string) (io.ReadCloser, int64, error) {
	out, err := s.client.GetObject(ctx, &s3.GetObjectInput{Bucket: &s.bucket, Key: &key})
	if err != nil {
		return nil, 0, missing(fmt.Errorf("s3: get %s: %w", key, err))
	}
	return out.Body, aws.ToInt64(out.ContentLength), nil
}

// Delete removes key; a missing key is not an error (S3 semantics).
func (s *Store) Delete(ctx context.Context, key string) error {
	if _, err := s.client.DeleteObject(ctx, &s3.DeleteObjectInput{Bucket: &s.bucket, Key: &key}); err != nil {
		return fmt.Errorf("s3: delete %s: %w", key, err)
	}
	return nil
}

// PresignGet returns a URL that downloads key for ttl, suggesting filename to browsers.
func (s *Store) PresignGet(ctx context.Context, key, filename string, ttl time.Duration) (string, error) {
	in := &s3.GetObjectInput{Bucket: &s.bucket, Key: &key}
	if filename != "" {
		in.ResponseContentDisposition = aws.String(fmt.Sprintf("attachment; filename=%q", filename))
	}
	req, err := s.presign.PresignGetObject(ctx, in, s3.WithPresignExpires(ttl))
	if err != nil {
		return "", fmt.Errorf("s3: presign get %s: %w", key, err)
	}
	return req.URL, nil
}

// PresignPut returns a URL that uploads exactly size bytes to key for ttl.
func (s *Store) PresignPut(ctx context.Context, key string, size int64, ttl time.Duration) (string, error) {
	req, err := s.presign.PresignPutObject(ctx, &s3.PutObjectInput{Bucket: &s.bucket, Key: &key, ContentLength: &size},
		s3.WithPresignExpires(ttl))
	if err != nil {
		return "", fmt.Errorf("s3: presign put %s: %w", key, err)
	}
	return req.URL, nil
}

// notFound reports whether err says the object does not exist.
func notFound(err error) bool {
	var nsk *types.NoSuchKey
	var nf *types.NotFound
	return errors.As(err, &nsk) || errors.As(err, &nf)
}

// missingError adds domain.ErrNoObject to the chain of an S3 error that says the object does not
// exist, keeping the message and the SDK's error.
type missingError struct{ err error }

func (e *missingError) Error() string   { return e.err.Error() }
func (e *missingError) Unwrap() []error { return []error{domain.ErrNoObject, e.err} }

// missing marks err with domain.ErrNoObject when it says the object does not exist.
func missing(err error) error {
	if notFound(err) {
		return &missingError{err: err}
	}
	return err
}

// Size returns the size of key; errors.Is(err, domain.ErrNoObject) when it does not exist.
func (s *Store) Size(ctx context.Context, key string) (int64, error) {
	out, err := s.client.HeadObject(ctx, &s3.HeadObjectInput{Bucket: &s.bucket, Key: &key})
	if err != nil {
		return 0, missing(fmt.Errorf("s3: head %s: %w", key, err))
	}
	return aws.ToInt64(out.ContentLength), nil
}

// PutSmall stores a body that is already in memory (a part of an upload) in a single request.
func (s *Store) PutSmall(ctx context.Context, key string, body []byte, contentType string) error {
	n := int64(len(body))
	_, err := s.client.PutObject(ctx, &s3.PutObjectInput{Bucket: &s.bucket, Key: &key, Body: bytes.NewReader(body),
		ContentLength: &n, ContentType: &contentType})
	if err != nil {
		return fmt.Errorf("s3: put %s: %w", key, err)
	}
	return nil
}

// DeletePrefix removes every object whose key starts with prefix, a page of up to 1,000 keys at
// a time (S3's maximum for both listing and batch delete).
func (s *Store) DeletePrefix(ctx context.Context, prefix string) error {
	p := s3.NewListObjectsV2Paginator(s.client, &s3.ListObjectsV2Input{Bucket: &s.bucket, Prefix: &prefix})
	for p.HasMorePages() {
		page, err := p.NextPage(ctx)
		if err != nil {
			return fmt.Errorf("s3: list %s: %w", prefix, err)
		}
		if len(page.Contents) == 0 {
			continue
		}
		ids := make([]types.ObjectIdentifier, len(page.Contents))
		for i, o := range page.Contents {
			ids[i] = types.ObjectIdentifier{Key: o.Key}
		}
		if _, err := s.client.DeleteObjects(ctx, &s3.DeleteObjectsInput{Bucket: &s.bucket,
			Delete: &types.Delete{Objects: ids, Quiet: aws.Bool(true)}}); err != nil {
			return fmt.Errorf("s3: delete %s: %w", prefix, err)
		}
	}
	return nil
}
