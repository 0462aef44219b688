//! `#[main]` and `#[test]` attributes for pyo3-aio, one pair per runtime.
//!
//! Use them through `pyo3_aio::tokio::main`, `pyo3_aio::async_std::test`, and so on (the
//! bridge's `attributes` feature); the expansions refer to `::pyo3_aio` paths.

use proc_macro::TokenStream;
use proc_macro2::{Span, TokenStream as TokenStream2};
use quote::{quote, quote_spanned};
use syn::parse::Parser;
use syn::punctuated::Punctuated;
use syn::spanned::Spanned;
use syn::{Expr, ExprLit, ItemFn, Lit, Meta, ReturnType, Token};

#[derive(Clone, Copy, PartialEq, Eq)]
enum Runtime {
    Tokio,
    AsyncStd,
    Smol,
}

impl Runtime {
    fn module(self) -> TokenStream2 {
        match self {
            Runtime::Tokio => quote!(::pyo3_aio::tokio),
            Runtime::AsyncStd => quote!(::pyo3_aio::async_std),
            Runtime::Smol => quote!(::pyo3_aio::smol),
        }
    }

    fn path(self) -> &'static str {
        match self {
            Runtime::Tokio => "pyo3_aio::tokio",
            Runtime::AsyncStd => "pyo3_aio::async_std",
            Runtime::Smol => "pyo3_aio::smol",
        }
    }

    fn accepted_main_options(self) -> &'static str {
        match self {
            Runtime::Tokio => {
                "`event_loop = \"module.factory\"` or `event_loop = path::to::factory`, `framework = \"asyncio\" | \"trio\"`, `flavor = \"multi_thread\" | \"current_thread\"`, `worker_threads = N`"
            }
            _ => {
                "`event_loop = \"module.factory\"` or `event_loop = path::to::factory`, `framework = \"asyncio\" | \"trio\"`"
            }
        }
    }
}

enum LoopFactory {
    Default,
    Dotted(String, Span),
    Rust(Expr),
}

struct MainOptions {
    event_loop: LoopFactory,
    /// `framework = "trio"`: the body runs as the main task of a `trio.run`.
    trio: bool,
    current_thread: bool,
    worker_threads: Option<Expr>,
}

fn parse_main_options(runtime: Runtime, attr: TokenStream) -> syn::Result<MainOptions> {
    let metas = Punctuated::<Meta, Token![,]>::parse_terminated.parse(attr)?;
    let mut options = MainOptions {
        event_loop: LoopFactory::Default,
        trio: false,
        current_thread: false,
        worker_threads: None,
    };
    for meta in metas {
        let Meta::NameValue(pair) = &meta else {
            return Err(unknown_option(runtime, meta.span(), "main"));
        };
        let name = pair
            .path
            .get_ident()
            .map(ToString::to_string)
            .unwrap_or_default();
        match (name.as_str(), runtime) {
            ("event_loop", _) => {
                options.event_loop = match &pair.value {
                    Expr::Lit(ExprLit {
                        lit: Lit::Str(text),
                        ..
                    }) => {
                        let dotted = text.value();
                        if !dotted.contains('.') || dotted.starts_with('.') || dotted.ends_with('.')
                        {
                            return Err(syn::Error::new(
                                text.span(),
                                "`event_loop` as a string names a Python callable as \"module.attribute\", e.g. \"uvloop.new_event_loop\"",
                            ));
                        }
                        LoopFactory::Dotted(dotted, text.span())
                    }
                    expr => LoopFactory::Rust(expr.clone()),
                }
            }
            ("framework", _) => options.trio = parse_framework(&pair.value)?,
            ("flavor", Runtime::Tokio) => {
                let Expr::Lit(ExprLit {
                    lit: Lit::Str(text),
                    ..
                }) = &pair.value
                else {
                    return Err(syn::Error::new(
                        pair.value.span(),
                        "`flavor` is \"multi_thread\" or \"current_thread\"",
                    ));
                };
                options.current_thread = match text.value().as_str() {
                    "multi_thread" => false,
                    "current_thread" => true,
                    _ => {
                        return Err(syn::Error::new(
                            text.span(),
                            "`flavor` is \"multi_thread\" or \"current_thread\"",
                        ));
                    }
                };
            }
            ("worker_threads", Runtime::Tokio) => options.worker_threads = Some(pair.value.clone()),
            _ => return Err(unknown_option(runtime, pair.path.span(), "main")),
        }
    }
    if options.trio && !matches!(options.event_loop, LoopFactory::Default) {
        return Err(syn::Error::new(
            Span::call_site(),
            "`event_loop` applies to asyncio: trio has no event loop factory",
        ));
    }
    if options.current_thread && options.worker_threads.is_some() {
        return Err(syn::Error::new(
            Span::call_site(),
            "`worker_threads` applies to the multi_thread flavor only",
        ));
    }
    Ok(options)
}

fn unknown_option(runtime: Runtime, span: Span, attribute: &str) -> syn::Error {
    let accepted = if attribute == "main" {
        runtime.accepted_main_options()
    } else {
        "`framework = \"asyncio\" | \"trio\"`"
    };
    syn::Error::new(
        span,
        format!(
            "unknown option for #[{}::{attribute}]: it accepts {accepted}",
            runtime.path()
        ),
    )
}

fn require_async(runtime: Runtime, function: &ItemFn, attribute: &str) -> syn::Result<()> {
    if function.sig.asyncness.is_none() {
        return Err(syn::Error::new(
            function.sig.fn_token.span(),
            format!(
                "#[{}::{attribute}] goes on an `async fn`; add `async` to `fn {}`",
                runtime.path(),
                function.sig.ident
            ),
        ));
    }
    if !function.sig.inputs.is_empty() {
        return Err(syn::Error::new(
            function.sig.inputs.span(),
            format!(
                "#[{}::{attribute}] functions take no arguments",
                runtime.path()
            ),
        ));
    }
    Ok(())
}

/// The function's body as a future of `PyResult<()>`-like output.
fn body_future(function: &ItemFn) -> TokenStream2 {
    let body = &function.block;
    let output = &function.sig.output;
    match output {
        ReturnType::Default => quote! {
            async move {
                let () = async move #body.await;
                ::std::result::Result::Ok::<(), ::pyo3_aio::__private::PyErr>(())
            }
        },
        ReturnType::Type(_, ty) => quote! {
            async move {
                let result: #ty = async move #body.await;
                result
            }
        },
    }
}

/// `framework = "asyncio" | "trio"`: whether it is trio.
fn parse_framework(value: &Expr) -> syn::Result<bool> {
    let Expr::Lit(ExprLit {
        lit: Lit::Str(text),
        ..
    }) = value
    else {
        return Err(syn::Error::new(
            value.span(),
            "`framework` is \"asyncio\" or \"trio\"",
        ));
    };
    match text.value().as_str() {
        "asyncio" => Ok(false),
        "trio" => Ok(true),
        _ => Err(syn::Error::new(
            text.span(),
            "`framework` is \"asyncio\" or \"trio\"",
        )),
    }
}

/// The options of `#[test]`: only `framework`; whether it is trio.
fn parse_test_options(runtime: Runtime, attr: TokenStream) -> syn::Result<bool> {
    let metas = Punctuated::<Meta, Token![,]>::parse_terminated.parse(attr)?;
    let mut trio = false;
    for meta in metas {
        match &meta {
            Meta::NameValue(pair) if pair.path.is_ident("framework") => {
                trio = parse_framework(&pair.value)?;
            }
            _ => return Err(unknown_option(runtime, meta.span(), "test")),
        }
    }
    Ok(trio)
}

fn main_impl(runtime: Runtime, attr: TokenStream, item: TokenStream) -> syn::Result<TokenStream2> {
    let function: ItemFn = syn::parse(item)?;
    require_async(runtime, &function, "main")?;
    let options = parse_main_options(runtime, attr)?;
    let module = runtime.module();
    let name = &function.sig.ident;
    let vis = &function.vis;
    let attrs = &function.attrs;
    let future = body_future(&function);
    let factory = match &options.event_loop {
        LoopFactory::Default => quote! {
            |py| ::pyo3_aio::__private::default_loop(py)
        },
        LoopFactory::Dotted(dotted, span) => quote_spanned! {*span=>
            |py| ::pyo3_aio::__private::loop_from_path(py, #dotted)
        },
        LoopFactory::Rust(expr) => quote_spanned! {expr.span()=>
            ::pyo3_aio::__private::loop_factory(#expr)
        },
    };
    let setup = if runtime == Runtime::Tokio {
        let builder = if options.current_thread {
            quote!(::pyo3_aio::__private::tokio::runtime::Builder::new_current_thread())
        } else {
            quote!(::pyo3_aio::__private::tokio::runtime::Builder::new_multi_thread())
        };
        let workers = options
            .worker_threads
            .as_ref()
            .map(|n| quote!(builder.worker_threads(#n);));
        quote! {
            let mut builder = #builder;
            builder.enable_all();
            #workers
            ::pyo3_aio::__private::init_tokio(builder);
        }
    } else {
        quote!()
    };
    let run = if options.trio {
        quote!(#module::run_trio(py, #future))
    } else {
        quote!(#module::run_with_loop_factory(py, #factory, #future))
    };
    Ok(quote! {
        #(#attrs)*
        #vis fn #name() {
            #setup
            ::pyo3_aio::__private::main(|py| {
                #run
            })
        }
    })
}

fn test_impl(runtime: Runtime, attr: TokenStream, item: TokenStream) -> syn::Result<TokenStream2> {
    let trio = parse_test_options(runtime, attr)?;
    let function: ItemFn = syn::parse(item)?;
    require_async(runtime, &function, "test")?;
    let run = if trio { quote!(run_trio) } else { quote!(run) };
    let module = runtime.module();
    let name = &function.sig.ident;
    let name_text = name.to_string();
    let future = body_future(&function);
    let attrs = &function.attrs;
    let vis = &function.vis;
    Ok(quote! {
        #(#attrs)*
        #vis fn #name(py: ::pyo3_aio::__private::Python<'_>) -> ::pyo3_aio::__private::PyResult<()> {
            #module::#run(py, #future)
        }

        ::pyo3_aio::testing::inventory::submit! {
            ::pyo3_aio::testing::Test::new(
                ::std::concat!(::std::module_path!(), "::", #name_text),
                #name,
            )
        }
    })
}

/// The expansion, or the error plus a bodiless stand-in for the function: keeping its name
/// makes the attribute's message the only one (no "`main` function not found", no
/// "cannot find function" where the function is used).
fn expand(result: syn::Result<TokenStream2>, item: TokenStream) -> TokenStream {
    match result {
        Ok(tokens) => tokens.into(),
        Err(error) => {
            let error = error.into_compile_error();
            let stand_in = syn::parse::<ItemFn>(item).ok().map(|function| {
                let vis = &function.vis;
                let name = &function.sig.ident;
                quote!(#[allow(dead_code)] #vis fn #name() {})
            });
            quote!(#error #stand_in).into()
        }
    }
}

/// `#[pyo3_aio::tokio::main]`: the program's `async fn main`, run on tokio while Python's
/// event loop owns the main thread. Options: `event_loop = "uvloop.new_event_loop"` (or a
/// Rust function `fn(Python) -> PyResult<Bound<PyAny>>`), `flavor = "current_thread"`,
/// `worker_threads = N`.
#[proc_macro_attribute]
pub fn tokio_main(attr: TokenStream, item: TokenStream) -> TokenStream {
    expand(main_impl(Runtime::Tokio, attr, item.clone()), item)
}

/// `#[pyo3_aio::async_std::main]`; option `event_loop = ...` as for tokio.
#[proc_macro_attribute]
pub fn async_std_main(attr: TokenStream, item: TokenStream) -> TokenStream {
    expand(main_impl(Runtime::AsyncStd, attr, item.clone()), item)
}

/// `#[pyo3_aio::smol::main]`; option `event_loop = ...` as for tokio.
#[proc_macro_attribute]
pub fn smol_main(attr: TokenStream, item: TokenStream) -> TokenStream {
    expand(main_impl(Runtime::Smol, attr, item.clone()), item)
}

/// `#[pyo3_aio::tokio::test]`: an `async fn` test run by `pyo3_aio::testing::main()` on a
/// fresh event loop, on the Python main thread.
#[proc_macro_attribute]
pub fn tokio_test(attr: TokenStream, item: TokenStream) -> TokenStream {
    expand(test_impl(Runtime::Tokio, attr, item.clone()), item)
}

/// `#[pyo3_aio::async_std::test]`.
#[proc_macro_attribute]
pub fn async_std_test(attr: TokenStream, item: TokenStream) -> TokenStream {
    expand(test_impl(Runtime::AsyncStd, attr, item.clone()), item)
}

/// `#[pyo3_aio::smol::test]`.
#[proc_macro_attribute]
pub fn smol_test(attr: TokenStream, item: TokenStream) -> TokenStream {
    expand(test_impl(Runtime::Smol, attr, item.clone()), item)
}
