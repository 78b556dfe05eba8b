// SPDX-License-Identifier: MIT
pragma solidity ^0.8.24;

import {IConsortium} from "./interfaces/IConsortium.sol";

/// @dev What every other coalition contract answers: the Consortium it asks for roles.
interface IConsortiumBound {
    function consortium() external view returns (address);
}

/// @title Consortium
/// @notice Members of the coalition (partners and auditors). Every other ledgercrm contract asks this
/// one for roles on every call, so a removal takes effect everywhere in the same block.
/// @dev Votes are counted against the partners that are members *when the votes are counted*: a removed
/// partner's earlier vote no longer counts, and the denominator shrinks with it. A vote belongs to the
/// voter's tenure: a partner removed and admitted again does not get its old votes back. Proposals
/// expire `PROPOSAL_LIFETIME` after they were made.
///
/// The Consortium is the coalition's trust anchor: its deployer records the other five contracts here
/// once, in the same deployment (`recordContracts`), each checked to be wired to this Consortium, and
/// everyone reads their addresses from here, never from a local configuration.
contract Consortium is IConsortium {
    struct Proposal {
        Action action;
        address account;
        address proposer;
        bool executed;
        uint64 expiresAt;
    }

    /// @dev One uninterrupted period as a partner; `toBlock`/`toTime` are the maximum while it lasts.
    struct Tenure {
        uint64 fromBlock;
        uint64 toBlock;
        uint64 fromTime;
        uint64 toTime;
    }

    uint64 public constant PROPOSAL_LIFETIME = 7 days;

    mapping(address account => Role) private _roles;
    address[] private _partners;
    Proposal[] private _proposals;
    // the voter's tenure number (1 for its first) when it voted; 0: no vote
    mapping(uint256 proposalId => mapping(address voter => uint256)) private _voted;
    mapping(address account => Tenure[]) private _tenures;
    address private immutable _deployer;
    uint64 private immutable _deployedAtBlock;
    address[] private _founders;
    Contracts private _contracts;

    /// @param founders the initial partners; at least one, no duplicates, no zero address.
    constructor(address[] memory founders) {
        if (founders.length == 0) revert ConsortiumNoFounders();
        _deployer = msg.sender;
        _deployedAtBlock = uint64(block.number);
        _founders = founders;
        for (uint256 i = 0; i < founders.length; ++i) {
            address founder = founders[i];
            if (founder == address(0)) revert ConsortiumZeroAddress();
            if (_roles[founder] != Role.None) revert ConsortiumDuplicateFounder(founder);
            _admit(founder, Role.Partner);
        }
    }

    /// @notice Record the coalition's other contracts, once; only the account that deployed this
    /// Consortium, as the last step of the deployment. Each must be a contract whose `consortium()` is
    /// this one, so a contract wired to another consortium (or an address without code) is refused.
    function recordContracts(Contracts calldata contracts_) external {
        if (msg.sender != _deployer) revert ConsortiumNotDeployer(msg.sender);
        if (_contracts.memberRegistry != address(0)) revert ConsortiumContractsAlreadyRecorded();
        _checkWired(contracts_.memberRegistry);
        _checkWired(contracts_.consentRegistry);
        _checkWired(contracts_.loyaltyPoints);
        _checkWired(contracts_.interactionAnchor);
        _checkWired(contracts_.decisionLog);
        _contracts = contracts_;
        emit ContractsRecorded(
            contracts_.memberRegistry,
            contracts_.consentRegistry,
            contracts_.loyaltyPoints,
            contracts_.interactionAnchor,
            contracts_.decisionLog
        );
    }

    function coalitionContracts() external view returns (Contracts memory) {
        return _contracts;
    }

    /// @notice The partners this Consortium was deployed with, and the block it was deployed in.
    function founding() external view returns (address[] memory founders, uint64 deployedAtBlock) {
        return (_founders, _deployedAtBlock);
    }

    function deployer() external view returns (address) {
        return _deployer;
    }

    modifier onlyPartner() {
        if (_roles[msg.sender] != Role.Partner) revert ConsortiumNotPartner(msg.sender);
        _;
    }

    /// @notice Propose to admit a partner (0), admit an auditor (1) or remove a member (2).
    /// The proposer's own vote is cast at once, so a single-partner consortium executes immediately.
    /// Requirements:
    /// - the caller is a partner;
    /// - `action` is 0, 1 or 2 and `account` is not the zero address;
    /// - admitting: `account` is not a member; removing: `account` is a member and not the last partner.
    function propose(uint8 action, address account) external onlyPartner returns (uint256 proposalId) {
        if (action > uint8(Action.RemoveMember)) revert ConsortiumInvalidAction(action);
        if (account == address(0)) revert ConsortiumZeroAddress();
        Action kind = Action(action);
        _checkApplicable(kind, account);
        proposalId = _proposals.length;
        _proposals.push(
            Proposal({
                action: kind,
                account: account,
                proposer: msg.sender,
                executed: false,
                expiresAt: uint64(block.timestamp) + PROPOSAL_LIFETIME
            })
        );
        emit ProposalCreated(proposalId, msg.sender, kind, account);
        _castVote(proposalId, msg.sender);
    }

    /// @notice Vote for a proposal; it executes in this call once a strict majority of partners voted.
    /// Requirements:
    /// - the caller is a partner that has not voted on this proposal;
    /// - the proposal exists, is not executed and still applies (see `propose`).
    function vote(uint256 proposalId) external onlyPartner {
        Proposal storage proposal = _openProposal(proposalId);
        if (_voted[proposalId][msg.sender] == _tenures[msg.sender].length) {
            revert ConsortiumAlreadyVoted(proposalId, msg.sender);
        }
        _checkApplicable(proposal.action, proposal.account);
        _castVote(proposalId, msg.sender);
    }

    /// @notice Execute a proposal whose votes became a majority because partners were removed since.
    /// Requirements:
    /// - the caller is a partner; the proposal is open, still applies and has a strict majority.
    function execute(uint256 proposalId) external onlyPartner {
        Proposal storage proposal = _openProposal(proposalId);
        _checkApplicable(proposal.action, proposal.account);
        uint256 votes = _countVotes(proposalId);
        if (!_isMajority(votes)) revert ConsortiumQuorumNotReached(proposalId, votes, _partners.length / 2 + 1);
        _execute(proposalId, proposal);
    }

    function isPartner(address account) external view returns (bool) {
        return _roles[account] == Role.Partner;
    }

    function isAuditor(address account) external view returns (bool) {
        return _roles[account] == Role.Auditor;
    }

    function roleOf(address account) external view returns (Role) {
        return _roles[account];
    }

    function partners() external view returns (address[] memory) {
        return _partners;
    }

    function tenureOf(address account) external view returns (uint256) {
        return _tenures[account].length;
    }

    function partnerCount() external view returns (uint256) {
        return _partners.length;
    }

    function proposalCount() external view returns (uint256) {
        return _proposals.length;
    }

    /// @notice A proposal and the votes it has from current partners.
    function proposal(
        uint256 proposalId
    ) external view returns (Action action, address account, address proposer, bool executed, uint256 votes) {
        if (proposalId >= _proposals.length) revert ConsortiumUnknownProposal(proposalId);
        Proposal storage p = _proposals[proposalId];
        return (p.action, p.account, p.proposer, p.executed, _countVotes(proposalId));
    }

    /// @notice Whether `voter` voted on the proposal during its current tenure (the vote that counts).
    function hasVoted(uint256 proposalId, address voter) external view returns (bool) {
        uint256 tenure = _tenures[voter].length;
        return tenure != 0 && _voted[proposalId][voter] == tenure;
    }

    function proposalExpiresAt(uint256 proposalId) external view returns (uint64) {
        if (proposalId >= _proposals.length) revert ConsortiumUnknownProposal(proposalId);
        return _proposals[proposalId].expiresAt;
    }

    function servedThrough(address account, uint64 fromBlock, uint64 atBlock) external view returns (bool) {
        Tenure[] storage tenures = _tenures[account];
        for (uint256 i = tenures.length; i > 0; --i) {
            Tenure storage t = tenures[i - 1];
            if (t.fromBlock <= fromBlock && fromBlock < t.toBlock) return atBlock < t.toBlock;
        }
        return false;
    }

    function servedThroughTime(address account, uint64 fromTime, uint64 atTime) external view returns (bool) {
        Tenure[] storage tenures = _tenures[account];
        for (uint256 i = tenures.length; i > 0; --i) {
            Tenure storage t = tenures[i - 1];
            if (t.fromTime <= fromTime && fromTime < t.toTime) return atTime < t.toTime;
        }
        return false;
    }

    function _checkWired(address account) private view {
        if (account == address(0)) revert ConsortiumZeroAddress();
        if (account.code.length == 0) revert ConsortiumForeignContract(account);
        try IConsortiumBound(account).consortium() returns (address bound) {
            if (bound != address(this)) revert ConsortiumForeignContract(account);
        } catch {
            revert ConsortiumForeignContract(account);
        }
    }

    function _openProposal(uint256 proposalId) private view returns (Proposal storage proposal_) {
        if (proposalId >= _proposals.length) revert ConsortiumUnknownProposal(proposalId);
        proposal_ = _proposals[proposalId];
        if (proposal_.executed) revert ConsortiumProposalClosed(proposalId);
        if (block.timestamp >= proposal_.expiresAt) revert ConsortiumProposalExpired(proposalId, proposal_.expiresAt);
    }

    function _castVote(uint256 proposalId, address voter) private {
        _voted[proposalId][voter] = _tenures[voter].length;
        uint256 votes = _countVotes(proposalId);
        emit ProposalVoted(proposalId, voter, votes, _partners.length);
        if (_isMajority(votes)) _execute(proposalId, _proposals[proposalId]);
    }

    function _execute(uint256 proposalId, Proposal storage proposal_) private {
        proposal_.executed = true;
        emit ProposalExecuted(proposalId);
        if (proposal_.action == Action.AdmitPartner) {
            _admit(proposal_.account, Role.Partner);
        } else if (proposal_.action == Action.AdmitAuditor) {
            _admit(proposal_.account, Role.Auditor);
        } else {
            _remove(proposal_.account);
        }
    }

    function _checkApplicable(Action action, address account) private view {
        Role role = _roles[account];
        if (action == Action.RemoveMember) {
            if (role == Role.None) revert ConsortiumNotMember(account);
            if (role == Role.Partner && _partners.length == 1) revert ConsortiumLastPartner(account);
        } else if (role != Role.None) {
            revert ConsortiumAlreadyMember(account, role);
        }
    }

    function _admit(address account, Role role) private {
        _roles[account] = role;
        if (role == Role.Partner) {
            _partners.push(account);
            _tenures[account].push(
                Tenure({
                    fromBlock: uint64(block.number),
                    toBlock: type(uint64).max,
                    fromTime: uint64(block.timestamp),
                    toTime: type(uint64).max
                })
            );
        }
        emit MemberAdmitted(account, role);
    }

    function _remove(address account) private {
        if (_roles[account] == Role.Partner) {
            uint256 last = _partners.length - 1;
            for (uint256 i = 0; i <= last; ++i) {
                if (_partners[i] == account) {
                    _partners[i] = _partners[last];
                    _partners.pop();
                    break;
                }
            }
            Tenure storage tenure = _tenures[account][_tenures[account].length - 1];
            tenure.toBlock = uint64(block.number);
            tenure.toTime = uint64(block.timestamp);
        }
        delete _roles[account];
        emit MemberRemoved(account);
    }

    // Linear in the number of partners: a coalition has tens of partners, not thousands, and counting
    // live keeps removed partners' votes out without any bookkeeping on removal.
    function _countVotes(uint256 proposalId) private view returns (uint256 votes) {
        mapping(address => uint256) storage voted = _voted[proposalId];
        for (uint256 i = 0; i < _partners.length; ++i) {
            address partner = _partners[i];
            if (voted[partner] == _tenures[partner].length) ++votes;
        }
    }

    function _isMajority(uint256 votes) private view returns (bool) {
        return votes * 2 > _partners.length;
    }
}
