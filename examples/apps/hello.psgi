# The demo's PSGI app: a greeting, the request as the app sees it, and a form echo.
use strict;
use warnings;
use JSON::PP ();

my $app = sub {
    my ($env) = @_;
    my $path = $env->{PATH_INFO};
    if ($path eq '/environ') {
        my %shown = map { $_ => "$env->{$_}" } grep { /^[A-Z_]+$/ || /^psgix?\./ } keys %$env;
        return [200, ['Content-Type' => 'application/json'],
                [JSON::PP->new->canonical->pretty->encode(\%shown)]];
    }
    if ($path eq '/echo' && $env->{REQUEST_METHOD} eq 'POST') {
        $env->{'psgi.input'}->read(my $body, $env->{CONTENT_LENGTH} || 0);
        return [200, ['Content-Type' => $env->{CONTENT_TYPE} || 'text/plain'], [$body // '']];
    }
    return [200, ['Content-Type' => 'text/plain'], ["Hello from liege (PSGI, Perl $^V), worker pid $$\n"]];
};
