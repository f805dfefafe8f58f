/**
 * The `ipysession` comm on a notebook's own kernel connection, whether or not it handles comms.
 *
 * @jupyterlab/services lets one connection per kernel handle comms: `KernelManager.connectTo`
 * gives `handleComms` only to the first connection to a kernel. After a page reload, the linked
 * console of a notebook ("New Console for Notebook", same kernel) may reconnect first; the
 * notebook's connection then has `handleComms === false` and its `createComm` throws.
 *
 * Such a connection still sends shell messages and emits every IOPub message of its kernel, so
 * the comm is spoken over those: `comm_open`, `comm_msg` and `comm_close` sent with our comm id,
 * and the kernel's `comm_msg` and `comm_close` for that id picked out of IOPub. The other
 * connection, which handles comms, does not know the id and ignores its messages, so each of
 * them reaches the notebook once. A second connection with `handleComms` (`kernel.clone`) is
 * not used: it would also take every comm the kernel opens (ipywidgets') and close each one it
 * has no target for.
 */
import { Kernel, KernelMessage } from '@jupyterlab/services';
import { JSONObject, UUID } from '@lumino/coreutils';

/** What the link needs of a comm; `Kernel.IComm` has it too. */
export interface ILinkComm {
  readonly commId: string;
  /** A message from the kernel on this comm. */
  onMsg: (msg: KernelMessage.ICommMsgMsg) => void | PromiseLike<void>;
  /** The kernel closed this comm (refused it, or ipysession unloaded). */
  onClose: (msg: KernelMessage.ICommCloseMsg) => void | PromiseLike<void>;
  open(data?: JSONObject): unknown;
  send(data: JSONObject): unknown;
  /** Tell the kernel the comm is closed, and forget it. */
  close(): unknown;
  /** Forget it without a word to the kernel (its comms ended with a restart). */
  dispose(): void;
}

/** A comm to `target` on `kernel`: its own when it handles comms, else spoken over IOPub. */
export function openComm(kernel: Kernel.IKernelConnection, target: string): ILinkComm {
  return kernel.handleComms ? kernel.createComm(target) : new IopubComm(kernel, target);
}

/** What an IOPub message means for the comm `commId`. */
export type CommEvent =
  | { kind: 'msg'; msg: KernelMessage.ICommMsgMsg }
  | { kind: 'close'; msg: KernelMessage.ICommCloseMsg }
  | null;

export function commEvent(msg: KernelMessage.IIOPubMessage, commId: string): CommEvent {
  if (KernelMessage.isCommMsgMsg(msg) && msg.content.comm_id === commId) {
    return { kind: 'msg', msg };
  }
  if (KernelMessage.isCommCloseMsg(msg) && msg.content.comm_id === commId) {
    return { kind: 'close', msg };
  }
  return null;
}

type ShellCommMessage =
  | KernelMessage.ICommOpenMsg<'shell'>
  | KernelMessage.ICommMsgMsg<'shell'>
  | KernelMessage.ICommCloseMsg<'shell'>;

/** The shell message that opens (with `target`), sends on or closes the comm `commId`. */
export function shellCommMessage(
  kind: 'comm_open' | 'comm_msg' | 'comm_close',
  from: { clientId: string; username: string },
  commId: string,
  data: JSONObject,
  target = ''
): ShellCommMessage {
  const common = { channel: 'shell' as const, session: from.clientId, username: from.username };
  switch (kind) {
    case 'comm_open':
      return KernelMessage.createMessage<KernelMessage.ICommOpenMsg<'shell'>>({
        ...common,
        msgType: kind,
        content: { comm_id: commId, target_name: target, data }
      });
    case 'comm_msg':
      return KernelMessage.createMessage<KernelMessage.ICommMsgMsg<'shell'>>({
        ...common,
        msgType: kind,
        content: { comm_id: commId, data }
      });
    case 'comm_close':
      return KernelMessage.createMessage<KernelMessage.ICommCloseMsg<'shell'>>({
        ...common,
        msgType: kind,
        content: { comm_id: commId, data }
      });
  }
}

/**
 * A comm on a connection without `handleComms`. Its messages go on the main shell (a comm the
 * connection creates may go on a subshell), so the kernel answers them between cells.
 */
export class IopubComm implements ILinkComm {
  readonly commId = UUID.uuid4();
  onMsg: ILinkComm['onMsg'] = () => undefined;
  onClose: ILinkComm['onClose'] = () => undefined;

  constructor(
    private readonly kernel: Kernel.IKernelConnection,
    private readonly target: string
  ) {
    kernel.iopubMessage.connect(this._onIopub, this);
  }

  open(data: JSONObject = {}): void {
    this._send('comm_open', data);
  }

  send(data: JSONObject): void {
    if (this._disposed) {
      throw new Error('ipysession: the comm is closed');
    }
    this._send('comm_msg', data);
  }

  close(): void {
    if (!this._disposed) {
      this._send('comm_close', {});
      this.dispose();
    }
  }

  dispose(): void {
    if (!this._disposed) {
      this._disposed = true;
      this.kernel.iopubMessage.disconnect(this._onIopub, this);
    }
  }

  private _send(kind: ShellCommMessage['header']['msg_type'], data: JSONObject): void {
    if (this.kernel.isDisposed) {
      return;
    }
    const message = shellCommMessage(kind, this.kernel, this.commId, data, this.target);
    this.kernel.sendShellMessage(message, false, true);
  }

  private _onIopub(_: Kernel.IKernelConnection, msg: KernelMessage.IIOPubMessage): void {
    const event = commEvent(msg, this.commId);
    if (event?.kind === 'msg') {
      void this.onMsg(event.msg);
    } else if (event?.kind === 'close') {
      this.dispose();
      void this.onClose(event.msg);
    }
  }

  private _disposed = false;
}
