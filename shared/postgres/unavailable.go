package postgres

import (
	"context"
	"errors"
	"io"
	"net"
	"strings"
	"syscall"

	"github.com/jackc/pgx/v5/pgconn"

	"github.com/fusillade/fusillade/shared/domain"
)

// ErrUnavailable is what every store method's error carries (errors.As finds it) when the
// database could not be reached or dropped the connection: the one place connection-class
// failures become the domain's "unavailable", which the API answers with 503 and Retry-After.
// The original error stays in the chain for logs and errors.Is.
var ErrUnavailable = &domain.Error{Code: domain.EUnavailable,
	Message: "The service is temporarily unavailable (its database cannot be reached); please retry."}

// unavailableError keeps both the domain error and the driver's error in the chain.
type unavailableError struct{ cause error }

func (e *unavailableError) Error() string   { return "database unavailable: " + e.cause.Error() }
func (e *unavailableError) Unwrap() []error { return []error{ErrUnavailable, e.cause} }

// unavailable marks err when it is a connection-class failure and returns it unchanged otherwise.
func unavailable(err error) error {
	if err == nil || !connectionFailure(err) {
		return err
	}
	var already *unavailableError
	if errors.As(err, &already) {
		return err
	}
	return &unavailableError{cause: err}
}

// connectionFailure reports the failures that say nothing about the statement and everything
// about the server being unreachable: a failed connect, SQLSTATE class 08 (connection
// exception), 57P01/57P02/57P03 (the server is shutting down or starting), and network errors
// (refused, reset, closed, EOF mid-conversation).
func connectionFailure(err error) bool {
	var ce *pgconn.ConnectError
	if errors.As(err, &ce) {
		return true
	}
	var pe *pgconn.PgError
	if errors.As(err, &pe) {
		return strings.HasPrefix(pe.Code, "08") || pe.Code == "57P01" || pe.Code == "57P02" || pe.Code == "57P03"
	}
	if errors.Is(err, context.Canceled) || errors.Is(err, context.DeadlineExceeded) {
		return false // the caller gave up; that is not the database's fault
	}
	var ne net.Error
	if errors.As(err, &ne) {
		return true
	}
	if errors.Is(err, io.EOF) || errors.Is(err, io.ErrUnexpectedEOF) || errors.Is(err, syscall.ECONNREFUSED) ||
		errors.Is(err, syscall.ECONNRESET) || errors.Is(err, syscall.EPIPE) {
		return true
	}
	// pgconn reports a connection it already found dead this way.
	return strings.Contains(err.Error(), "conn closed") || pgconn.SafeToRetry(err)
}

// Transient reports whether err says that the database could not be reached or the connection
// failed (refused, reset, closed mid-statement, timed out, the server shutting down, starting up
// or out of connections, a serialisation failure or deadlock) rather than that the statement was
// wrong: the same statement may succeed when tried again. A write that failed this way may or may
// not have committed.
func Transient(err error) bool {
	if err == nil {
		return false
	}
	var pgErr *pgconn.PgError
	if errors.As(err, &pgErr) {
		switch pgErr.Code {
		case "53300", "40001", "40P01": // too many connections, serialisation failure, deadlock
			return true
		}
	}
	return errors.Is(err, ErrUnavailable) || connectionFailure(err) || pgconn.Timeout(err) ||
		errors.Is(err, context.DeadlineExceeded)
}

// Transient is the package's Transient as a method, so that the engine can classify the errors
// of the store it is given without knowing which store that is.
func (s *Store) Transient(err error) bool { return Transient(err) }
