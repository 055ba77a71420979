# The smallest PSGI app: every request gets 200 and "Hello World!" with a Content-Length.
#
# bench/wsgi serves it with every PSGI server it compares (liege, uWSGI's psgi plugin, Starman),
# so what is measured is the server, not the app. Body and headers are those of bench/apps/hello.py.
use strict;
use warnings;

my $body = 'Hello World!';
my $headers = ['Content-Type' => 'text/plain', 'Content-Length' => length $body];

my $app = sub {
    return [200, $headers, [$body]];
};
