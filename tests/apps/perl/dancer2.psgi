# A Dancer2 app (Debian's libdancer2-perl): routes, a route parameter, JSON in and out.
use strict;
use warnings;

package LiegeDancer;
use Dancer2;

set serializer => 'JSON';

get '/' => sub { send_as plain => 'dancer2 index' };
get '/hello/:name' => sub { send_as plain => 'hello ' . route_parameters->get('name') };
post '/json' => sub {
    return { received => body_parameters->as_hashref_mixed, method => request->method };
};

package main;
LiegeDancer->to_app;
