# The integration tests' PSGI app: one route per case of the request matrix (the same routes as
# tests/apps/python/it_matrix.py), wrapped in Plack::Middleware::Lint, so any PSGI violation by
# the server (or by this app) makes the request fail loudly instead of passing.
use strict;
use warnings;
use File::Basename qw(dirname);
use File::Spec;
use JSON::PP;
use Plack::Middleware::Lint;
use Plack::Util;
use POSIX ();
use Time::HiRes ();

my $here = dirname(File::Spec->rel2abs(__FILE__));

sub text { return [$_[0], ['Content-Type' => 'text/plain'], [$_[1]]] }

sub read_body {
    my ($env) = @_;
    my $len = $env->{CONTENT_LENGTH} || 0;
    my $body = '';
    # Reads at an offset (psgi.input's read($buf, $len, $offset)), small ones first.
    while (length($body) < $len) {
        my $n = $env->{'psgi.input'}->read($body, length($body) < 12 ? 3 : 65536, length($body));
        last unless $n;
    }
    return $body;
}

my $app = sub {
    my ($env) = @_;
    my $path = $env->{PATH_INFO};
    return text(200, 'Hello World') if $path eq '/';
    if ($path eq '/echo') {
        my $body = read_body($env);
        return [200, ['Content-Type' => 'application/octet-stream',
                      'Content-Length' => length($body)], [$body]];
    }
    if ($path eq '/lines') {
        my @lines = split /\n/, read_body($env);
        return text(200, scalar(@lines) . ' ' . join('|', @lines));
    }
    return text(200, "$path?$env->{QUERY_STRING}") if $path =~ m{^/path};
    if ($path eq '/stream') {
        # A delayed response streamed through the writer.
        return sub {
            my $responder = shift;
            my $w = $responder->([200, ['Content-Type' => 'text/plain']]);
            $w->write("chunk$_;") for 0 .. 4;
            $w->close;
        };
    }
    if ($path eq '/delayed') {
        return sub { $_[0]->(text(200, 'delayed')) };
    }
    if ($path eq '/file') {
        my $file = "$here/it_matrix.psgi";
        open my $fh, '<:raw', $file or die "cannot open $file: $!";
        Plack::Util::set_io_path($fh, $file);
        return [200, ['Content-Type' => 'text/x-perl'], $fh];
    }
    if ($path eq '/getline') {
        # A body object with getline and close, not a real file.
        my @parts = map { "part$_;" } 0 .. 2;
        my $body = Plack::Util::inline_object(
            getline => sub { shift @parts },
            close   => sub { 1 },
        );
        return [200, ['Content-Type' => 'text/plain'], $body];
    }
    die "the app raised on purpose\n" if $path eq '/raise';
    return [204, [], []] if $path eq '/empty';
    if ($path eq '/sleep') {
        Time::HiRes::sleep($env->{QUERY_STRING} || 1);
        return text(200, 'slept');
    }
    return text(200, "$$") if $path eq '/pid';
    POSIX::_exit(3) if $path eq '/crash';
    if ($path eq '/big') {
        my $body = 'x' x (1 << 20);
        return [200, ['Content-Type' => 'text/plain'],
                [substr($body, 0, 1 << 19), substr($body, 1 << 19)]];
    }
    if ($path eq '/environ') {
        my %out = map { $_ => $env->{$_} } qw(REQUEST_METHOD SCRIPT_NAME PATH_INFO QUERY_STRING
            CONTENT_TYPE CONTENT_LENGTH SERVER_NAME SERVER_PORT SERVER_PROTOCOL REMOTE_ADDR
            HTTP_HOST HTTP_X_TEST psgi.url_scheme);
        for my $k (qw(psgi.multithread psgi.multiprocess psgi.run_once psgi.nonblocking
                      psgi.streaming psgix.input.buffered)) {
            $out{$k} = $env->{$k} ? JSON::PP::true : JSON::PP::false;
        }
        $out{'psgi.version'} = $env->{'psgi.version'};
        $env->{'psgi.errors'}->print("psgi.errors reached the log\n");
        return [200, ['Content-Type' => 'application/json'], [encode_json(\%out)]];
    }
    return text(404, 'not found');
};

Plack::Middleware::Lint->wrap($app);
