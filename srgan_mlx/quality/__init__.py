"""Measuring super-resolution: PSNR and SSIM by the standard protocol, NIQE, the colour bias, and MATLAB's bicubic
resize that the protocol's low-resolution inputs are made with."""
