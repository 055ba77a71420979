# The response-shape matrix behind Plack::Middleware::Lint, which dies on anything the PSGI spec
# forbids in the env the server gives or the response the app gives.
use Plack::Builder;
use Plack::Request;

my $app = sub {
    my $env = shift;
    my $req = Plack::Request->new($env);
    my $path = $req->path_info;
    if ($path eq '/echo') {
        my $body = $req->content;
        return [200, ['Content-Type' => 'application/octet-stream'], [$body]];
    }
    if ($path eq '/query') {
        my $name = $req->parameters->{name} // 'nobody';
        return [200, ['Content-Type' => 'text/plain'], ["hello $name"]];
    }
    if ($path eq '/stream') {
        return sub {
            my $w = $_[0]->([200, ['Content-Type' => 'text/plain']]);
            $w->write("chunk$_\n") for 1 .. 3;
            $w->close;
        };
    }
    if ($path eq '/delayed') {
        return sub { $_[0]->([200, ['Content-Type' => 'text/plain'], ['delayed']]) };
    }
    if ($path eq '/fh') {
        open my $fh, '<', __FILE__ or die $!;
        return [200, ['Content-Type' => 'text/plain'], $fh];
    }
    return [200, ['Content-Type' => 'text/plain'], ['lint ok ', $env->{'psgi.url_scheme'}]];
};

builder {
    enable 'Lint';
    $app;
};
